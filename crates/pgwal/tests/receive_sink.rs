//! A `WalSink` of the embedder's own, driven by the receiver against a real PostgreSQL 18
//! server with a slot: the flush position the server sees (`pg_stat_replication.flush_lsn`,
//! the slot's `restart_lsn`) never passes what the sink reports durable and does reach it, and
//! the bytes the sink received equal the server's `pg_wal`.

#![cfg(feature = "receiver")]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgwal::conninfo::{Config, MapEnvironment};
use pgwal::receiver::{ReceiveError, Receiver, ReceiverOptions, SinkStart, Stopped, WalSink};
use pgwal::replication::SlotName;
use pgwal::wal::DecoderConfig;
use pgwal::{Lsn, SegNo, TimelineId, WalSegSize};
use pgwal_testkit::{Cluster, Major};

/// What the sink holds, shared with the test.
#[derive(Default)]
struct Held {
    /// Segment → its bytes received so far.
    segments: BTreeMap<u64, Vec<u8>>,
    /// Segments finished (every byte received).
    finished: Vec<u64>,
    written: Lsn,
    durable: Lsn,
    bytes: u64,
    /// Calls of `begin_segment`/`write` outside the order the trait documents.
    misuse: Vec<String>,
}

/// Keeps WAL in memory; calls it durable at a flush, but never past `cap` (the test moves it).
struct MemorySink {
    held: Arc<Mutex<Held>>,
    cap: Arc<AtomicU64>,
    seg_size: WalSegSize,
    open: Option<u64>,
}

impl WalSink for MemorySink {
    fn start_position(&mut self, cfg: &DecoderConfig) -> Result<SinkStart, ReceiveError> {
        self.seg_size = cfg.seg_size;
        self.open = None;
        Ok(SinkStart::Empty)
    }
    fn read_history(&mut self, _tli: TimelineId) -> Result<Option<Vec<u8>>, ReceiveError> {
        Ok(None)
    }
    fn write_history(&mut self, _tli: TimelineId, _content: &[u8]) -> Result<(), ReceiveError> {
        Ok(())
    }
    fn begin(&mut self, _tli: TimelineId, start: Lsn) -> Result<(), ReceiveError> {
        let mut h = self.held.lock().unwrap();
        h.written = start;
        // Nothing before the start is needed from this sink.
        h.durable = h
            .durable
            .max(start.min(Lsn(self.cap.load(Ordering::SeqCst))));
        Ok(())
    }
    fn begin_segment(&mut self, _tli: TimelineId, segno: SegNo) -> Result<(), ReceiveError> {
        let mut h = self.held.lock().unwrap();
        if self.open.is_some() {
            h.misuse
                .push(format!("segment {} begun while one is open", segno.0));
        }
        self.open = Some(segno.0);
        h.segments.entry(segno.0).or_default().clear();
        Ok(())
    }
    fn write(&mut self, start: Lsn, data: &[&[u8]]) -> Result<(), ReceiveError> {
        let mut h = self.held.lock().unwrap();
        let Some(seg) = self.open else {
            h.misuse
                .push(format!("write at {start} with no segment open"));
            return Ok(());
        };
        if start != h.written || start.segment(self.seg_size).0 != seg {
            let expected = h.written;
            h.misuse
                .push(format!("write at {start}, expected {expected}"));
        }
        let n: usize = data.iter().map(|d| d.len()).sum();
        let buf = h.segments.entry(seg).or_default();
        for d in data {
            buf.extend_from_slice(d);
        }
        h.bytes += n as u64;
        h.written = Lsn(start.0 + n as u64);
        Ok(())
    }
    fn finish_segment(&mut self) -> Result<(), ReceiveError> {
        let seg = self.open.take();
        let mut h = self.held.lock().unwrap();
        match seg {
            Some(s) => h.finished.push(s),
            None => h.misuse.push("finish with no segment open".into()),
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), ReceiveError> {
        let mut h = self.held.lock().unwrap();
        let cap = Lsn(self.cap.load(Ordering::SeqCst));
        h.durable = h.durable.max(h.written.min(cap));
        Ok(())
    }
    fn close(&mut self) -> Result<(), ReceiveError> {
        self.open = None;
        self.flush()
    }
    fn durable(&self) -> Lsn {
        self.held.lock().unwrap().durable
    }
}

fn lsn(pg: &Cluster, sql: &str) -> Option<Lsn> {
    let v = pg.scalar_blocking(sql).ok()?;
    v.parse().ok()
}

/// The walsender's flush position and the slot's restart_lsn (`None` before any report).
fn server_view(pg: &Cluster) -> (Option<Lsn>, Option<Lsn>) {
    let flush = lsn(
        pg,
        "SELECT flush_lsn FROM pg_stat_replication WHERE application_name = 'memsink'",
    );
    let slot = lsn(
        pg,
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'mem'",
    );
    (flush, slot)
}

/// Polls until `done` or `limit`, checking on every round that the server's view never passes
/// what the sink reported durable (read after the server's view: the sink's durable position
/// only grows). Returns the last server view.
fn watch(
    pg: &Cluster,
    held: &Mutex<Held>,
    limit: Duration,
    mut done: impl FnMut(Option<Lsn>, Lsn) -> bool,
) -> Option<Lsn> {
    let t0 = Instant::now();
    let mut rounds = 0;
    loop {
        let (flush, slot) = server_view(pg);
        let durable = held.lock().unwrap().durable;
        for (what, v) in [("flush_lsn", flush), ("restart_lsn", slot)] {
            if let Some(v) = v {
                assert!(
                    v <= durable,
                    "the server's {what} {v} is past what the sink holds durably ({durable})"
                );
            }
        }
        rounds += 1;
        if done(flush, durable) {
            assert!(rounds > 0);
            return flush;
        }
        assert!(
            t0.elapsed() < limit,
            "timed out: flush_lsn {flush:?}, durable {durable}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_user_sink_gets_the_servers_wal_and_decides_the_flush_position() {
    let major = Major::V18;
    if pgwal_testkit::require_major(major).is_none() {
        return;
    }
    let pg = Cluster::builder(major)
        .wal_segsize_mb(1)
        .start()
        .unwrap_or_else(|e| panic!("starting PostgreSQL {major}: {e}"));
    pg.scalar_blocking("SELECT lsn FROM pg_create_physical_replication_slot('mem', true)")
        .unwrap();
    let start = lsn(
        &pg,
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'mem'",
    )
    .unwrap();
    let seg_size = WalSegSize::new(1 << 20).unwrap();
    let first_seg = start.segment(seg_size).0;

    let home = tempfile::tempdir().unwrap();
    let env = MapEnvironment::new()
        .with_user("postgres")
        .with_home(home.path());
    let conn = Config::parse_with_env(
        &format!(
            "host=127.0.0.1 port={} sslmode=disable application_name=memsink",
            pg.port()
        ),
        &env,
    )
    .unwrap();
    let mut opts = ReceiverOptions::new(home.path().join("unused"));
    opts.slot = Some(SlotName::new("mem").unwrap());
    opts.status_interval = Some(Duration::from_secs(1));
    let held = Arc::new(Mutex::new(Held::default()));
    // At first the sink calls nothing durable beyond the start.
    let cap = Arc::new(AtomicU64::new(start.0));
    let sink = MemorySink {
        held: held.clone(),
        cap: cap.clone(),
        seg_size,
        open: None,
    };
    let receiver = Receiver::with_sink(conn, opts, sink);
    let stop = receiver.stop_handle();
    let runner = std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(receiver.run())
    });

    // WAL across several segments; all of it reaches the sink, none of it is reported.
    pg.sql_load_blocking(3_000).unwrap();
    let end = lsn(&pg, "SELECT pg_switch_wal()").unwrap();
    let t0 = Instant::now();
    while held.lock().unwrap().written < end {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the sink did not get the WAL up to {end}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Several status intervals pass: the server never sees more than the sink's durable.
    let t0 = Instant::now();
    watch(&pg, &held, Duration::from_secs(10), |_, _| {
        t0.elapsed() > Duration::from_secs(4)
    });
    assert_eq!(held.lock().unwrap().durable, start);

    // The bytes the sink got equal the server's pg_wal (the slot keeps every segment).
    {
        let h = held.lock().unwrap();
        assert!(h.misuse.is_empty(), "{:?}", h.misuse);
        let last_seg = end.segment(seg_size).0;
        assert!(last_seg >= first_seg + 2, "{first_seg}..{last_seg}");
        let mut compared = 0;
        for seg in first_seg..last_seg {
            assert!(h.finished.contains(&seg), "segment {seg} not finished");
            let name = SegNo(seg).file_name(TimelineId(1), seg_size);
            let server = std::fs::read(pg.pg_wal_dir().join(&name)).unwrap();
            let got = &h.segments[&seg];
            // The first segment is received from the slot's position's segment start.
            assert!(got == &server, "segment {name} differs from the server's");
            compared += 1;
        }
        assert!(compared >= 2);
        assert_eq!(
            h.bytes,
            h.written.0 - start.segment_start(seg_size).0,
            "bytes received"
        );
    }

    // The sink calls a point in the middle durable: the server's flush reaches it exactly.
    let mid = Lsn(start.0 + (end.0 - start.0) / 2);
    cap.store(mid.0, Ordering::SeqCst);
    let seen = watch(&pg, &held, Duration::from_secs(30), |f, _| f == Some(mid));
    assert_eq!(seen, Some(mid));
    // And all of it.
    cap.store(u64::MAX, Ordering::SeqCst);
    let seen = watch(&pg, &held, Duration::from_secs(30), |f, _| {
        f.is_some_and(|f| f >= end)
    });
    assert!(seen.is_some_and(|f| f >= end));
    let slot = lsn(
        &pg,
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'mem'",
    )
    .unwrap();
    assert!(slot > mid, "the slot did not follow: {slot}");

    stop.stop();
    let r = runner.join().unwrap();
    assert_eq!(r.unwrap(), Stopped::Requested);
}
