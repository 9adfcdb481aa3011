//! SQL plumbing: LSN text, connections, and a blocking query helper usable anywhere.

use std::time::Duration;

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::error::{pg_error_text, Error, Result};

/// Parse PostgreSQL's `X/X` LSN text (e.g. `0/16B3748`) into a 64-bit position.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// Format a 64-bit WAL position as PostgreSQL's `X/X` text (e.g. `0/16B3748`).
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Quote a conninfo value if needed (`'...'` with `\` escapes).
pub(crate) fn conninfo_value(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// Connect with tokio-postgres (no TLS) and spawn the connection task on the current runtime.
pub(crate) async fn connect(conninfo: &str) -> std::result::Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls).await?;
    tokio::spawn(async move {
        // The error (if any) surfaces on the client's next call.
        let _ = connection.await;
    });
    Ok(client)
}

/// Rows of a simple-protocol query as text (`None` for NULL).
pub type TextRows = Vec<Vec<Option<String>>>;

/// Run `sql` (one or more statements, simple protocol) with the client; all result rows.
pub(crate) async fn simple_rows(
    client: &Client,
    sql: &str,
) -> std::result::Result<TextRows, tokio_postgres::Error> {
    let msgs = client.simple_query(sql).await?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

/// Run `sql` on a fresh connection from a private thread with its own runtime, so it works both
/// in plain `#[test]`s and inside a tokio runtime.
pub(crate) fn blocking_query(conninfo: &str, sql: &str, timeout: Duration) -> Result<TextRows> {
    let ci = conninfo.to_string();
    let q = sql.to_string();
    let handle = std::thread::Builder::new()
        .name("pgwal-testkit-sql".into())
        .spawn(move || -> std::result::Result<TextRows, String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot build a tokio runtime: {e}"))?;
            rt.block_on(async {
                let work = async {
                    let client = connect(&ci).await.map_err(|e| pg_error_text(&e))?;
                    simple_rows(&client, &q)
                        .await
                        .map_err(|e| pg_error_text(&e))
                };
                match tokio::time::timeout(timeout, work).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("no answer within {}s", timeout.as_secs())),
                }
            })
        })
        .map_err(|e| Error::Other(format!("cannot spawn a thread: {e}")))?;
    let res = handle
        .join()
        .map_err(|_| Error::Other("the SQL helper thread panicked".into()))?;
    res.map_err(|message| Error::Sql {
        conninfo: conninfo.to_string(),
        sql: sql.to_string(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_text() {
        assert_eq!(parse_lsn("0/16B3748"), Some(0x16B3748));
        assert_eq!(parse_lsn("1A/0"), Some(0x1A_0000_0000));
        assert_eq!(parse_lsn("FFFFFFFF/FFFFFFFF"), Some(u64::MAX));
        assert_eq!(parse_lsn("nope"), None);
        assert_eq!(parse_lsn("1/XYZ"), None);
        assert_eq!(format_lsn(0x1A_0000_0010), "1A/10");
        assert_eq!(
            parse_lsn(&format_lsn(0x1234_5678_9ABC)),
            Some(0x1234_5678_9ABC)
        );
    }

    #[test]
    fn conninfo_quoting() {
        assert_eq!(conninfo_value("abc"), "abc");
        assert_eq!(conninfo_value("a b"), "'a b'");
        assert_eq!(conninfo_value("it's"), "'it\\'s'");
        assert_eq!(conninfo_value(""), "''");
    }
}
