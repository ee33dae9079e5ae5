//! Multi-row inserts for the batch writers (request log, page views, tool calls): a batch becomes a few
//! statements of many rows each instead of one statement per row.

use super::Backend;

/// Rows per multi-row statement at most.
const ROWS_PER_STATEMENT: usize = 128;
/// Bytes of bound values one statement carries at most (an estimate: each value's text or 8 bytes, plus its
/// length prefix). sqlx 0.9 leaves Nagle's algorithm on (launchbadge/sqlx#4335), and over TLS a message longer
/// than one 16 KiB record goes out in two writes, the second held until the server's delayed ACK: 40 ms per
/// statement. Below one record, a statement is one write.
const BYTES_PER_STATEMENT: usize = 12 * 1024;

/// `items` cut into runs of at most [`ROWS_PER_STATEMENT`] items and about [`BYTES_PER_STATEMENT`] bytes.
pub fn statements<T>(items: &[T], size: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let n = size(item);
        if i > start && (i - start == ROWS_PER_STATEMENT || bytes + n > BYTES_PER_STATEMENT) {
            out.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// The estimated bound size of `ints` numbers and the given texts.
pub fn bound_bytes(ints: usize, texts: &[Option<&str>]) -> usize {
    ints * 12
        + texts
            .iter()
            .map(|t| 4 + t.map_or(0, str::len))
            .sum::<usize>()
}

/// `INSERT INTO table (columns) VALUES ($1, ..), ($n, ..)` for `rows` rows of `width` values, then `tail`.
///
/// On SQLite the placeholders are anonymous (`?`, bound in order): sqlx-sqlite looks up the name of every
/// parameter it binds, and SQLite finds a name by walking the statement's list of named parameters, so a
/// statement of n named parameters cost n²/2 steps to bind (2.6 million for 128 tool-call rows).
pub fn multi_row_insert(
    backend: Backend,
    table: &str,
    columns: &str,
    width: usize,
    rows: usize,
    tail: &str,
) -> String {
    let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => sql.push_str(&format!("${}", r * width + c + 1)),
            }
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_stay_under_the_row_and_byte_limits_and_keep_every_item() {
        let small = vec![10_usize; 300];
        let cut = statements(&small, |n| *n);
        assert_eq!(
            cut.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [128, 128, 44]
        );
        let big = vec![5000_usize; 5];
        let cut = statements(&big, |n| *n);
        assert_eq!(cut.iter().map(|c| c.len()).collect::<Vec<_>>(), [2, 2, 1]);
        let huge = vec![50_000_usize; 2];
        assert_eq!(
            statements(&huge, |n| *n).len(),
            2,
            "an item over the limit goes alone"
        );
        assert!(statements::<usize>(&[], |n| *n).is_empty());
    }

    #[test]
    fn a_multi_row_insert_numbers_its_placeholders_in_order_on_postgres_and_leaves_them_anonymous_on_sqlite()
     {
        assert_eq!(
            multi_row_insert(
                Backend::Postgres,
                "t",
                "a, b",
                2,
                2,
                " ON CONFLICT DO NOTHING"
            ),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            multi_row_insert(Backend::Sqlite, "t", "a, b", 2, 2, ""),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
    }
}
