-- The SMS transaction log (issue 9, seed 001): one row per provider call (send, lookup, risk, verification,
-- status poll), updated with the delivery status from polls and receipts. Never the full number (masked for
-- people, a keyed HMAC for lookups and limits), never a code in clear (a console verification code is kept as
-- a keyed HMAC), never message text. The limits count rows of this table, so they hold across instances.
CREATE TABLE sms_transactions (
    id TEXT PRIMARY KEY,
    user_id TEXT REFERENCES users(id) ON DELETE SET NULL,
    kind TEXT NOT NULL,
    number_masked TEXT NOT NULL,
    number_hash TEXT NOT NULL,
    -- pending (inserted before the provider call), ok, failed, refused (over a limit: never sent)
    state TEXT NOT NULL,
    reference_id TEXT,
    external_id TEXT NOT NULL,
    status_code INTEGER,
    status_description TEXT,
    success INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    final_status_code INTEGER,
    final_status TEXT,
    code_hmac TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX sms_transactions_user ON sms_transactions(user_id, created_at);
CREATE INDEX sms_transactions_number ON sms_transactions(number_hash, created_at);
CREATE INDEX sms_transactions_reference ON sms_transactions(reference_id);
CREATE INDEX sms_transactions_created ON sms_transactions(created_at);
