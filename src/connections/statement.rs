//! The statement classifier: what a user's query must be before anything is sent to a database. Exactly one
//! statement (a second one after a `;` is refused: sqlx's SQLite and MySQL drivers, and PostgreSQL's simple
//! protocol, would run every statement of a string), starting with a reading keyword, and with no word that
//! writes or reaches outside the database (`INTO OUTFILE`, `FOR UPDATE`, a data-modifying CTE's `DELETE`).
//!
//! The scanner knows each dialect's string literals, quoted identifiers and comments, so a `;` or a word inside
//! them does not count; where a dialect is ambiguous it errs on the side of seeing more code (comments do not
//! nest; MySQL's executable `/*! */` comments are refused outright). It is the first line of defence: the
//! statement then runs in a read-only transaction with a timeout (`engines.rs`), and on PostgreSQL and MySQL the
//! server's own parser confirms it is a single statement before it runs.

/// Which SQL dialect a statement is read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

/// First keywords a query may start with.
const READING: &[&str] = &["SELECT", "WITH", "VALUES", "EXPLAIN", "TABLE"];
/// Also allowed where the dialect has them.
const READING_POSTGRES: &[&str] = &["SHOW"];
const READING_MYSQL: &[&str] = &["SHOW", "DESCRIBE", "DESC"];

/// Words that write, lock or reach outside the database; refused anywhere in a query outside literals,
/// quoted identifiers and comments (a column named like one must be quoted).
const WRITING: &[&str] = &[
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "UPSERT",
    "DROP",
    "CREATE",
    "ALTER",
    "TRUNCATE",
    "GRANT",
    "REVOKE",
    "COPY",
    "CALL",
    "DO",
    "LOAD",
    "ATTACH",
    "DETACH",
    "VACUUM",
    "REINDEX",
    "LOCK",
    "HANDLER",
    "INTO",
    "OUTFILE",
    "DUMPFILE",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "LISTEN",
    "NOTIFY",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "BEGIN",
];

/// Why a query was refused (completes "Query refused: ...").
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the query is empty")]
    Empty,
    #[error("only one statement may run at a time")]
    MultipleStatements,
    #[error(
        "only reading statements may run (SELECT, WITH, VALUES, TABLE, EXPLAIN, SHOW, DESCRIBE), not {0}"
    )]
    NotReading(String),
    #[error("{0} is not allowed in a read-only query")]
    Writing(String),
    #[error("an unterminated string, quoted name or comment")]
    Unterminated,
    #[error("MySQL executable comments (/*! ... */) are not allowed")]
    ExecutableComment,
}

/// The statement of `sql` without its surrounding whitespace, comments and trailing `;`s, if it is one
/// reading statement.
pub fn check(sql: &str, dialect: Dialect) -> Result<&str, Refused> {
    let tokens = scan(sql, dialect)?;
    // A `;` followed by anything but more `;`s, whitespace and comments is a second statement.
    let mut end = None;
    for t in &tokens {
        match t.kind {
            Kind::Semicolon => {
                end.get_or_insert(t.start);
            }
            _ if end.is_some() => return Err(Refused::MultipleStatements),
            _ => {}
        }
    }
    let first = tokens
        .iter()
        .find(|t| !matches!(t.kind, Kind::Semicolon | Kind::Other) || t.text(sql) != "(")
        .filter(|t| t.kind != Kind::Semicolon)
        .ok_or(Refused::Empty)?;
    let start = tokens
        .iter()
        .find(|t| t.kind != Kind::Semicolon)
        .map_or(0, |t| t.start);
    let keyword = match first.kind {
        Kind::Word => first.text(sql).to_ascii_uppercase(),
        _ => first.text(sql).chars().take(20).collect(),
    };
    let dialect_words: &[&str] = match dialect {
        Dialect::Postgres => READING_POSTGRES,
        Dialect::MySql => READING_MYSQL,
        Dialect::Sqlite => &[],
    };
    if !READING.contains(&keyword.as_str()) && !dialect_words.contains(&keyword.as_str()) {
        return Err(Refused::NotReading(keyword));
    }
    if let Some(word) = tokens
        .iter()
        .filter(|t| t.kind == Kind::Word)
        .map(|t| t.text(sql).to_ascii_uppercase())
        .find(|w| WRITING.contains(&w.as_str()))
    {
        return Err(Refused::Writing(word));
    }
    let end = end.unwrap_or_else(|| tokens.last().map_or(sql.len(), |t| t.end));
    Ok(sql[start..end].trim())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A bare word (keyword or unquoted name).
    Word,
    /// A string literal or quoted identifier.
    Quoted,
    Semicolon,
    /// Any other character (operators, numbers, parentheses).
    Other,
}

#[derive(Clone, Copy, Debug)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

impl Token {
    fn text<'a>(&self, sql: &'a str) -> &'a str {
        &sql[self.start..self.end]
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The tokens of `sql` that matter here: words, quoted things, `;`s and single other characters; whitespace
/// and comments are dropped.
fn scan(sql: &str, dialect: Dialect) -> Result<Vec<Token>, Refused> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        // Comments.
        if c == b'-' && next == Some(b'-') {
            // MySQL: `--` starts a comment only when followed by whitespace or a control character.
            let comment = dialect != Dialect::MySql
                || b.get(i + 2)
                    .is_none_or(|&n| n.is_ascii_whitespace() || n < 0x20);
            if comment {
                i = b[i..]
                    .iter()
                    .position(|&x| x == b'\n')
                    .map_or(b.len(), |p| i + p + 1);
                continue;
            }
        }
        if c == b'#' && dialect == Dialect::MySql {
            i = b[i..]
                .iter()
                .position(|&x| x == b'\n')
                .map_or(b.len(), |p| i + p + 1);
            continue;
        }
        if c == b'/' && next == Some(b'*') {
            if dialect == Dialect::MySql
                && (b.get(i + 2) == Some(&b'!') || b[i + 2..].starts_with(b"M!"))
            {
                return Err(Refused::ExecutableComment);
            }
            // Not nested: on PostgreSQL (which nests) that only makes more of the text count as code.
            let close = sql[i + 2..].find("*/").ok_or(Refused::Unterminated)?;
            i = i + 2 + close + 2;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        // Quoted things.
        let quoted_end = match c {
            b'\'' => {
                // Backslash escapes: every MySQL string (the session turns NO_BACKSLASH_ESCAPES off), and
                // PostgreSQL's E'...' strings (the session turns standard_conforming_strings on).
                let escapes = match dialect {
                    Dialect::MySql => true,
                    Dialect::Postgres => out.last().is_some_and(|t: &Token| {
                        t.kind == Kind::Word && t.end == i && t.text(sql).eq_ignore_ascii_case("e")
                    }),
                    Dialect::Sqlite => false,
                };
                Some(quoted(b, i, b'\'', escapes)?)
            }
            b'"' => Some(quoted(b, i, b'"', dialect == Dialect::MySql)?),
            b'`' if dialect != Dialect::Postgres => Some(quoted(b, i, b'`', false)?),
            b'[' if dialect == Dialect::Sqlite => Some(
                sql[i..]
                    .find(']')
                    .map(|p| i + p + 1)
                    .ok_or(Refused::Unterminated)?,
            ),
            b'$' if dialect == Dialect::Postgres => dollar_quoted(sql, i)?,
            _ => None,
        };
        if let Some(end) = quoted_end {
            out.push(Token {
                kind: Kind::Quoted,
                start,
                end,
            });
            i = end;
            continue;
        }
        if c == b';' {
            out.push(Token {
                kind: Kind::Semicolon,
                start,
                end: i + 1,
            });
            i += 1;
            continue;
        }
        if is_word_byte(c) && c != b'$' {
            let mut end = i;
            while end < b.len() && is_word_byte(b[end]) {
                end += 1;
            }
            out.push(Token {
                kind: Kind::Word,
                start,
                end,
            });
            i = end;
            continue;
        }
        // One other character (keeping UTF-8 boundaries: words took every byte >= 0x80).
        out.push(Token {
            kind: Kind::Other,
            start,
            end: i + 1,
        });
        i += 1;
    }
    Ok(out)
}

/// The end (one past the closing quote) of a literal or identifier opened by `quote` at `start`: a doubled
/// quote stays inside, and so does a backslash-escaped character when `backslash`.
fn quoted(b: &[u8], start: usize, quote: u8, backslash: bool) -> Result<usize, Refused> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if backslash => i += 2,
            x if x == quote => {
                if b.get(i + 1) == Some(&quote) {
                    i += 2;
                } else {
                    return Ok(i + 1);
                }
            }
            _ => i += 1,
        }
    }
    Err(Refused::Unterminated)
}

/// A PostgreSQL dollar-quoted string at `start` (`$$...$$`, `$tag$...$tag$`): its end, or `None` when the `$`
/// opens none (a `$1` parameter).
fn dollar_quoted(sql: &str, start: usize) -> Result<Option<usize>, Refused> {
    let b = sql.as_bytes();
    let mut i = start + 1;
    if b.get(i).is_some_and(|c| c.is_ascii_digit()) {
        return Ok(None);
    }
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
        i += 1;
    }
    if b.get(i) != Some(&b'$') {
        return Ok(None);
    }
    let tag = &sql[start..=i];
    let body = i + 1;
    let close = sql[body..].find(tag).ok_or(Refused::Unterminated)?;
    Ok(Some(body + close + tag.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use Dialect::{MySql, Postgres, Sqlite};

    #[test]
    fn one_reading_statement_passes_without_its_trailing_semicolons_and_comments() {
        for d in [Postgres, MySql, Sqlite] {
            assert_eq!(check("  SELECT 1 ;; -- done\n", d), Ok("SELECT 1"));
            assert_eq!(check("/* c */ select ';' AS x;", d), Ok("select ';' AS x"));
            assert_eq!(
                check("WITH t AS (SELECT 1) SELECT * FROM t", d),
                Ok("WITH t AS (SELECT 1) SELECT * FROM t")
            );
            assert_eq!(check("(SELECT 1) UNION (SELECT 2)", d).map(|_| ()), Ok(()));
            assert_eq!(check("VALUES (1)", d).map(|_| ()), Ok(()));
        }
        assert!(check("SHOW server_version", Postgres).is_ok());
        assert!(check("DESCRIBE t", MySql).is_ok());
        assert!(check("SELECT \"a;b\" FROM \"t\"", Postgres).is_ok());
        assert!(check("SELECT `a;b` FROM `t`", MySql).is_ok());
        assert!(check("SELECT [a;b] FROM t", Sqlite).is_ok());
        assert!(check("SELECT $$;$$, $x$ ' ; $x$, $1", Postgres).is_ok());
        assert!(check("SELECT updated_at, \"delete\" FROM t", Postgres).is_ok());
    }

    #[test]
    fn a_second_statement_is_refused_wherever_it_hides() {
        let multi = Err(Refused::MultipleStatements);
        for d in [Postgres, MySql, Sqlite] {
            assert_eq!(check("SELECT 1; DROP TABLE t", d), multi);
            assert_eq!(check("SELECT 1;SELECT 2", d), multi);
            assert_eq!(check("SELECT ';'; SELECT 2 -- x", d), multi);
            assert_eq!(check("SELECT 1 /* a */ ; /* b */ SELECT 2", d), multi);
        }
        // PostgreSQL: E'' strings take backslash escapes; dollar quotes hide quotes.
        assert_eq!(check("SELECT E'\\''; DROP TABLE t; --'", Postgres), multi);
        assert_eq!(check("SELECT $$ ' $$; DROP TABLE t; -- '", Postgres), multi);
        // Comments do not nest here, so PostgreSQL's nested comments hide nothing.
        assert_eq!(check("SELECT 1 /* /* */ ; SELECT 2 */", Postgres), multi);
        // MySQL: a backslash escapes a quote, `--` without a space is arithmetic, `#` is a comment.
        assert_eq!(check("SELECT '\\''; DROP TABLE t; -- '", MySql), multi);
        assert_eq!(check("SELECT 1--1; DROP TABLE t", MySql), multi);
        assert_eq!(check("SELECT 1 # ; DROP TABLE t", MySql), Ok("SELECT 1"));
        assert_eq!(
            check("SELECT 1 /*! ; DROP TABLE t */", MySql),
            Err(Refused::ExecutableComment)
        );
        assert_eq!(check("SELECT 'x", Sqlite), Err(Refused::Unterminated));
        assert_eq!(check("SELECT $a$ x", Postgres), Err(Refused::Unterminated));
    }

    #[test]
    fn anything_but_reading_is_refused() {
        for (sql, word) in [
            ("INSERT INTO t VALUES (1)", "INSERT"),
            ("update t set a = 1", "UPDATE"),
            ("DROP TABLE t", "DROP"),
            ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/x'", "COPY"),
            ("SET statement_timeout = 0", "SET"),
            ("CALL p()", "CALL"),
            ("ATTACH DATABASE 'x' AS y", "ATTACH"),
            ("PRAGMA writable_schema = 1", "PRAGMA"),
            ("'x'", "'x'"),
        ] {
            assert_eq!(
                check(sql, Postgres),
                Err(Refused::NotReading(word.into())),
                "{sql}"
            );
        }
        for (sql, word) in [
            (
                "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
                "DELETE",
            ),
            ("SELECT * FROM t FOR UPDATE", "UPDATE"),
            ("SELECT * FROM t INTO OUTFILE '/tmp/x'", "INTO"),
            ("EXPLAIN ANALYZE DELETE FROM t", "DELETE"),
        ] {
            assert_eq!(
                check(sql, MySql),
                Err(Refused::Writing(word.into())),
                "{sql}"
            );
        }
        assert_eq!(check("  ;; -- nothing", Sqlite), Err(Refused::Empty));
        assert_eq!(check("", Sqlite), Err(Refused::Empty));
    }
}
