//! A minimal HTTP/1.x responder for Prometheus: `GET /metrics` (or `/`) returns the text
//! format; anything else gets 404. One request per connection.
//!
//! The endpoint must never take from archiving what archiving needs, above all file
//! descriptors: at most [`MAX_CONNECTIONS`] connections are served at a time (one more is
//! closed as soon as it is accepted), each for at most [`REQUEST_TIMEOUT`] in all (reading the
//! request and writing the answer), and an `accept()` error such as `EMFILE` pauses the
//! listener for [`ACCEPT_BACKOFF`] instead of ending it or spinning.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::SharedMetrics;

/// Connections served at the same time; more are closed at once.
pub(super) const MAX_CONNECTIONS: usize = 16;
/// The longest a connection is served, request and answer together.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause after a failed `accept()` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);
/// The longest request head read.
const MAX_REQUEST: usize = 16 * 1024;

/// Binds `addr` and serves the metrics in the background.
pub(super) async fn start(addr: &str, metrics: SharedMetrics) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(
        "serving metrics on http://{}/metrics",
        listener.local_addr()?
    );
    tokio::spawn(serve(listener, metrics));
    Ok(())
}

async fn serve(listener: TcpListener, metrics: SharedMetrics) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut last_warning: Option<Instant> = None;
    loop {
        let sock = match listener.accept().await {
            Ok((sock, _)) => sock,
            Err(e) => {
                // At most one warning a minute: a flood must not flood the log too.
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    tracing::warn!("metrics endpoint: could not accept a connection: {e}");
                    last_warning = Some(Instant::now());
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Busy: close at once, freeing the descriptor.
            drop(sock);
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(sock, &metrics)).await;
            drop(permit);
        });
    }
}

/// Reads one request head and writes the answer.
async fn answer(mut sock: TcpStream, metrics: &SharedMetrics) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, body) =
        if (method == "GET" || method == "HEAD") && (path == "/metrics" || path == "/") {
            ("200 OK", metrics.render())
        } else {
            ("404 Not Found", "not found\n".to_owned())
        };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await?;
    if method != "HEAD" {
        sock.write_all(body.as_bytes()).await?;
    }
    sock.shutdown().await
}
