-- The confusable skeleton (Unicode TS #39) of each username's canonical form, unique, so a lookalike of an
-- existing name (Cyrillic `аdmin` beside `admin`) is refused by the database like a duplicate. Rows from before
-- this migration get theirs at start-up; a row whose skeleton another account already holds stays NULL.
ALTER TABLE users ADD COLUMN username_skeleton TEXT;
CREATE UNIQUE INDEX users_username_skeleton ON users(username_skeleton);
