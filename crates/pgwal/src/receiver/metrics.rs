//! Counters and gauges of a running receiver, rendered in Prometheus' text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Live numbers of a [`Receiver`](super::Receiver). Every field is an atomic, updated by the
/// receiving task and the writer thread; read them at any time or [`render`](Self::render)
/// them for Prometheus.
#[derive(Debug, Default)]
pub struct Metrics {
    /// End of the WAL received (LSN as a number).
    pub received_lsn: AtomicU64,
    /// End of the WAL handed to the file system.
    pub written_lsn: AtomicU64,
    /// End of the WAL known durable (fsynced) in the archive.
    pub flushed_lsn: AtomicU64,
    /// The server's end of WAL, from its latest message.
    pub server_lsn: AtomicU64,
    /// The timeline being streamed.
    pub timeline: AtomicU64,
    /// Seconds between the server sending WAL and that WAL being durable here (f64 bits).
    pub lag_seconds: AtomicU64,
    /// WAL bytes received.
    pub bytes_received: AtomicU64,
    /// Bytes written to segment files (compressed size when compressing).
    pub bytes_written: AtomicU64,
    /// Segments completed (renamed to their final name).
    pub segments_written: AtomicU64,
    /// Reconnections after a lost or failed connection.
    pub reconnects: AtomicU64,
    /// Errors (connection, server, write) that ended a connection.
    pub errors: AtomicU64,
    /// fsync calls on WAL files.
    pub fsyncs: AtomicU64,
    /// Total time spent in those fsyncs, in seconds (f64 bits).
    pub fsync_seconds: AtomicU64,
    /// Status updates sent to the server.
    pub status_updates: AtomicU64,
    /// 1 while streaming, else 0.
    pub streaming: AtomicU64,
    /// Unix time of the last message from the server (f64 bits).
    pub last_message_time: AtomicU64,
}

pub(crate) fn add_f64(a: &AtomicU64, v: f64) {
    let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
        Some((f64::from_bits(b) + v).to_bits())
    });
}

pub(crate) fn set_f64(a: &AtomicU64, v: f64) {
    a.store(v.to_bits(), Ordering::Relaxed);
}

pub(crate) fn max_u64(a: &AtomicU64, v: u64) {
    a.fetch_max(v, Ordering::Relaxed);
}

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Metrics {
    /// The metrics in Prometheus' text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let f = |a: &AtomicU64| f64::from_bits(a.load(Ordering::Relaxed));
        let mut s = String::new();
        let mut put = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(s, "# HELP pgwal_receive_{name} {help}");
            let _ = writeln!(s, "# TYPE pgwal_receive_{name} {kind}");
            let _ = writeln!(s, "pgwal_receive_{name} {value}");
        };
        let flushed = g(&self.flushed_lsn);
        let server = g(&self.server_lsn);
        put(
            "received_lsn",
            "gauge",
            "End of the WAL received, as a byte position.",
            g(&self.received_lsn).to_string(),
        );
        put(
            "written_lsn",
            "gauge",
            "End of the WAL written to segment files.",
            g(&self.written_lsn).to_string(),
        );
        put(
            "flushed_lsn",
            "gauge",
            "End of the WAL durable (fsynced) in the archive.",
            flushed.to_string(),
        );
        put(
            "server_lsn",
            "gauge",
            "The server's end of WAL, from its latest message.",
            server.to_string(),
        );
        put(
            "lag_bytes",
            "gauge",
            "Bytes between the server's end of WAL and the durable end here.",
            server.saturating_sub(flushed).to_string(),
        );
        put(
            "lag_seconds",
            "gauge",
            "Seconds between the server sending WAL and it being durable here.",
            format!("{}", f(&self.lag_seconds)),
        );
        put(
            "timeline",
            "gauge",
            "Timeline being streamed.",
            g(&self.timeline).to_string(),
        );
        put(
            "streaming",
            "gauge",
            "1 while connected and streaming.",
            g(&self.streaming).to_string(),
        );
        put(
            "received_bytes_total",
            "counter",
            "WAL bytes received.",
            g(&self.bytes_received).to_string(),
        );
        put(
            "written_bytes_total",
            "counter",
            "Bytes written to segment files (compressed size when compressing).",
            g(&self.bytes_written).to_string(),
        );
        put(
            "segments_total",
            "counter",
            "Segments completed and renamed to their final name.",
            g(&self.segments_written).to_string(),
        );
        put(
            "reconnects_total",
            "counter",
            "Reconnections after a lost or failed connection.",
            g(&self.reconnects).to_string(),
        );
        put(
            "errors_total",
            "counter",
            "Errors that ended a connection.",
            g(&self.errors).to_string(),
        );
        put(
            "fsyncs_total",
            "counter",
            "fsync calls on WAL files.",
            g(&self.fsyncs).to_string(),
        );
        put(
            "fsync_seconds_total",
            "counter",
            "Time spent in fsync of WAL files.",
            format!("{}", f(&self.fsync_seconds)),
        );
        put(
            "status_updates_total",
            "counter",
            "Standby status updates sent.",
            g(&self.status_updates).to_string(),
        );
        put(
            "last_message_timestamp_seconds",
            "gauge",
            "Unix time of the last message from the server.",
            format!("{}", f(&self.last_message_time)),
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.server_lsn.store(100, Ordering::Relaxed);
        m.flushed_lsn.store(40, Ordering::Relaxed);
        add_f64(&m.fsync_seconds, 0.5);
        add_f64(&m.fsync_seconds, 0.25);
        let t = m.render();
        assert!(t.contains("pgwal_receive_lag_bytes 60\n"), "{t}");
        assert!(
            t.contains("pgwal_receive_fsync_seconds_total 0.75\n"),
            "{t}"
        );
        assert!(
            t.contains("# TYPE pgwal_receive_segments_total counter\n"),
            "{t}"
        );
    }
}
