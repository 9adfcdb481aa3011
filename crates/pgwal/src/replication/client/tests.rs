//! Driver tests against a scripted server on a local socket: connection logic (hosts,
//! sslmode, passwords), commands, streaming with feedback, and TLS with a generated CA.

use std::path::Path;
use std::sync::Arc;

use postgres_protocol::authentication::md5_hash;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};

use super::*;
use crate::conninfo::MapEnvironment;
use crate::replication::message::StandbyStatusUpdate;
use crate::replication::testutil::{self as t, FrontendMsg, ScramServer};
use crate::replication::{CreateSlotOptions, SlotName};

/// Aborts the test binary if a test hangs (a scripted server waiting for a message the
/// client never sends would otherwise block CI forever).
struct Watchdog(Arc<std::sync::atomic::AtomicBool>);

fn watchdog() -> Watchdog {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        for _ in 0..600 {
            std::thread::sleep(Duration::from_millis(100));
            if flag.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
        }
        eprintln!("a replication client test hung for 60 s; aborting");
        std::process::abort();
    });
    Watchdog(done)
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The server side of a test connection.
struct Mock<S> {
    s: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Mock<S> {
    async fn exact(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0; n];
        self.s.read_exact(&mut b).await.unwrap();
        b
    }

    async fn startup(&mut self) -> Vec<(String, String)> {
        let len = self.exact(4).await;
        let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let mut all = len;
        all.extend(self.exact(n - 4).await);
        t::parse_startup(&all)
    }

    async fn msg(&mut self) -> FrontendMsg {
        let hdr = self.exact(5).await;
        let n = u32::from_be_bytes([hdr[1], hdr[2], hdr[3], hdr[4]]) as usize;
        let mut all = hdr;
        all.extend(self.exact(n - 4).await);
        t::parse_frontend(&all).remove(0)
    }

    async fn status(&mut self) -> StandbyStatusUpdate {
        match self.msg().await {
            FrontendMsg::CopyData(d) => StandbyStatusUpdate::parse(&d).unwrap(),
            other => panic!("expected a status update, got {other:?}"),
        }
    }

    async fn send(&mut self, parts: &[Vec<u8>]) {
        for p in parts {
            self.s.write_all(p).await.unwrap();
        }
        self.s.flush().await.unwrap();
    }

    /// Finishes startup after authentication.
    async fn ready(&mut self, version: &str) {
        self.send(&[
            t::param_status("server_version", version),
            t::param_status("integer_datetimes", "on"),
            t::backend_key(99, 1),
            t::ready(),
        ])
        .await;
    }

    async fn trust(&mut self, version: &str) -> Vec<(String, String)> {
        let p = self.startup().await;
        self.send(&[t::auth_ok()]).await;
        self.ready(version).await;
        p
    }

    async fn answer(&mut self, cols: &[(&str, u32)], row: &[Option<&str>], tag: &str) {
        self.send(&[
            t::row_description(cols),
            t::data_row(row),
            t::command_complete(tag),
            t::ready(),
        ])
        .await;
    }
}

async fn listen() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

async fn accept(l: &TcpListener) -> Mock<TcpStream> {
    Mock {
        s: l.accept().await.unwrap().0,
    }
}

fn config(s: &str) -> Config {
    Config::parse_with_env(s, &MapEnvironment::new().with_user("rep")).unwrap()
}

#[tokio::test]
async fn commands() {
    let _watchdog = watchdog();
    let (l, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut m = accept(&l).await;
        let params = m.trust("14.11").await;
        assert!(params.contains(&("replication".into(), "true".into())));
        assert!(params.contains(&("database".into(), "replication".into())));
        assert!(params.contains(&("application_name".into(), "tester".into())));
        assert!(params.contains(&("user".into(), "rep".into())));

        assert_eq!(m.msg().await, FrontendMsg::Query("IDENTIFY_SYSTEM".into()));
        m.answer(
            &[
                ("systemid", 25),
                ("timeline", 23),
                ("xlogpos", 25),
                ("dbname", 25),
            ],
            &[
                Some("7000000000000000001"),
                Some("3"),
                Some("0/5000060"),
                None,
            ],
            "IDENTIFY_SYSTEM",
        )
        .await;
        assert_eq!(
            m.msg().await,
            FrontendMsg::Query("CREATE_REPLICATION_SLOT \"s1\" PHYSICAL RESERVE_WAL".into())
        );
        m.answer(
            &[
                ("slot_name", 25),
                ("consistent_point", 25),
                ("snapshot_name", 25),
                ("output_plugin", 25),
            ],
            &[Some("s1"), Some("0/0"), None, None],
            "CREATE_REPLICATION_SLOT",
        )
        .await;
        assert_eq!(
            m.msg().await,
            FrontendMsg::Query("DROP_REPLICATION_SLOT \"s2\" WAIT".into())
        );
        m.send(&[
            t::error(&[
                (b'S', "ERROR"),
                (b'V', "ERROR"),
                (b'C', "42704"),
                (b'M', "replication slot \"s2\" does not exist"),
            ]),
            t::ready(),
        ])
        .await;
        assert_eq!(
            m.msg().await,
            FrontendMsg::Query("SHOW wal_segment_size".into())
        );
        m.answer(&[("wal_segment_size", 25)], &[Some("1MB")], "SHOW")
            .await;
        assert_eq!(
            m.msg().await,
            FrontendMsg::Query("TIMELINE_HISTORY 3".into())
        );
        m.answer(
            &[("filename", 25), ("content", 17)],
            &[
                Some("00000003.history"),
                Some("1\t0/3000000\tx\n2\t0/4000000\ty\n"),
            ],
            "TIMELINE_HISTORY",
        )
        .await;
        assert_eq!(m.msg().await, FrontendMsg::Terminate);
    });

    let cfg = config(&format!(
        "host=127.0.0.1 port={port} sslmode=disable application_name=tester"
    ));
    let mut c = ReplicationClient::connect(&cfg).await.unwrap();
    assert_eq!(c.server_version(), Some(ServerVersion(140011)));
    assert_eq!(c.parameter("integer_datetimes"), Some("on"));
    assert_eq!(c.backend_pid(), Some(99));
    assert!(!c.is_tls());
    let id = c.identify_system().await.unwrap();
    assert_eq!(id.system_id, 7000000000000000001);
    assert_eq!(id.timeline, TimelineId(3));
    let s1 = SlotName::new("s1").unwrap();
    let created = c
        .create_replication_slot(
            &s1,
            CreateSlotOptions {
                reserve_wal: true,
                ..CreateSlotOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(created.slot_name, "s1");
    let e = c
        .drop_replication_slot(&SlotName::new("s2").unwrap(), true)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("42704"));
    assert_eq!(
        c.wal_segment_size().await.unwrap(),
        WalSegSize::new(1 << 20).unwrap()
    );
    let h = c.timeline_history(TimelineId(3)).await.unwrap();
    assert_eq!(h.history.entries.len(), 2);
    // READ_REPLICATION_SLOT needs 15+: refused without a round trip.
    assert!(matches!(
        c.read_replication_slot(&s1).await,
        Err(Error::UnsupportedByServer { required: 15, .. })
    ));
    c.close().await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn streaming_feedback_and_timeline_end() {
    let _watchdog = watchdog();
    let (l, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut m = accept(&l).await;
        m.trust("16.2").await;
        assert_eq!(
            m.msg().await,
            FrontendMsg::Query("START_REPLICATION SLOT \"s\" PHYSICAL 0/1000000 TIMELINE 1".into())
        );
        m.send(&[t::copy_both()]).await;
        // pg_receivewal sends a status update right away.
        let st = m.status().await;
        assert_eq!(
            (st.write, st.flush, st.apply),
            (Lsn(0x100_0000), Lsn(0), Lsn(0))
        );
        m.send(&[
            t::copy_data(&t::xlogdata(0x100_0000, 0x200_0000, 5, b"0123456789")),
            t::copy_data(&t::keepalive(0x200_0000, 6, true)),
        ])
        .await;
        // The automatic answer to the keepalive reports what was received.
        let st = m.status().await;
        assert_eq!(st.write, Lsn(0x100_000A));
        assert_eq!(st.flush, Lsn::INVALID);
        assert!(!st.reply_requested);
        // Then the feedback handle's update and hot-standby feedback.
        let st = m.status().await;
        assert_eq!((st.write, st.flush), (Lsn(0x100_000A), Lsn(0x100_0005)));
        match m.msg().await {
            FrontendMsg::CopyData(d) => assert_eq!(HotStandbyFeedback::parse(&d).unwrap().xmin, 77),
            other => panic!("{other:?}"),
        }
        // End of the historic timeline.
        m.send(&[t::copy_done()]).await;
        assert_eq!(m.msg().await, FrontendMsg::CopyDone);
        m.send(&[
            t::row_description(&[("next_tli", 20), ("next_tli_startpos", 25)]),
            t::data_row(&[Some("2"), Some("0/100000A")]),
            t::command_complete("SELECT"),
            t::command_complete("START_STREAMING"),
            t::ready(),
        ])
        .await;
        // The same connection goes on.
        assert_eq!(
            m.msg().await,
            FrontendMsg::Query("START_REPLICATION PHYSICAL 0/1000000 TIMELINE 2".into())
        );
        m.send(&[t::copy_both()]).await;
        // No interval: no initial status update; the client stops.
        assert_eq!(m.msg().await, FrontendMsg::CopyDone);
        m.send(&[
            t::copy_data(&t::xlogdata(0x100_000A, 0x100_000A, 7, b"late")),
            t::copy_done(),
            t::command_complete("START_STREAMING"),
            t::ready(),
        ])
        .await;
        assert_eq!(m.msg().await, FrontendMsg::Terminate);
    });

    let cfg = config(&format!("host=127.0.0.1 port={port} sslmode=disable"));
    let mut c = ReplicationClient::connect(&cfg).await.unwrap();
    let cmd = StartReplication::new(Lsn(0x100_0000))
        .slot(SlotName::new("s").unwrap())
        .timeline(TimelineId(1));
    let opts = StreamOptions::default().status_interval(Some(Duration::from_secs(3600)));
    let mut stream = c.start_replication_with(&cmd, opts).await.unwrap();
    let fb = stream.feedback();
    let Some(Ok(ReplicationEvent::XLogData(x))) = stream.next_event().await else {
        panic!("expected WAL")
    };
    assert_eq!(
        (x.start, x.end, &x.data[..]),
        (Lsn(0x100_0000), Lsn(0x100_000A), &b"0123456789"[..])
    );
    let Some(Ok(ReplicationEvent::Keepalive(k))) = stream.next_event().await else {
        panic!("expected keepalive")
    };
    assert!(k.reply_requested);
    assert_eq!(stream.received(), Lsn(0x100_000A));
    fb.set_flush(Lsn(0x100_0005));
    fb.set_flush(Lsn(0x100_0001)); // ignored: positions never move back
    fb.send_status();
    fb.send_hot_standby_feedback(HotStandbyFeedback {
        xmin: 77,
        ..HotStandbyFeedback::default()
    });
    let ev = stream.next_event().await.unwrap().unwrap();
    assert_eq!(
        ev,
        ReplicationEvent::TimelineEnded {
            next_tli: TimelineId(2),
            next_start: Lsn(0x100_000A)
        }
    );
    assert!(stream.next_event().await.is_none());
    drop(stream);

    let cmd = StartReplication::new(Lsn(0x100_0000)).timeline(TimelineId(2));
    let mut stream = c
        .start_replication_with(&cmd, StreamOptions::default().status_interval(None))
        .await
        .unwrap();
    stream.stop();
    let Some(Ok(ReplicationEvent::XLogData(x))) = stream.next_event().await else {
        panic!("in-flight WAL is still delivered")
    };
    assert_eq!(&x.data[..], b"late");
    assert!(stream.next_event().await.is_none());
    drop(stream);
    assert!(c.protocol().is_idle());
    c.close().await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn abandoned_stream_is_finished_by_next_command() {
    let _watchdog = watchdog();
    let (l, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut m = accept(&l).await;
        m.trust("17.0").await;
        assert!(
            matches!(m.msg().await, FrontendMsg::Query(q) if q.starts_with("START_REPLICATION"))
        );
        m.send(&[
            t::copy_both(),
            t::copy_data(&t::xlogdata(0x100, 0x100, 1, b"a")),
            t::copy_data(&t::xlogdata(0x101, 0x101, 1, b"b")),
        ])
        .await;
        assert_eq!(m.msg().await, FrontendMsg::CopyDone);
        m.send(&[
            t::copy_done(),
            t::command_complete("START_STREAMING"),
            t::ready(),
        ])
        .await;
        assert_eq!(m.msg().await, FrontendMsg::Query("IDENTIFY_SYSTEM".into()));
        m.answer(
            &[
                ("systemid", 25),
                ("timeline", 20),
                ("xlogpos", 25),
                ("dbname", 25),
            ],
            &[Some("1"), Some("1"), Some("0/102"), None],
            "IDENTIFY_SYSTEM",
        )
        .await;
    });
    let cfg = config(&format!("host=127.0.0.1 port={port} sslmode=disable"));
    let mut c = ReplicationClient::connect(&cfg).await.unwrap();
    let opts = StreamOptions::default().status_interval(None);
    let mut stream = c
        .start_replication_with(&StartReplication::new(Lsn(0x100)), opts)
        .await
        .unwrap();
    assert!(matches!(
        stream.next_event().await,
        Some(Ok(ReplicationEvent::XLogData(_)))
    ));
    drop(stream);
    let id = c.identify_system().await.unwrap();
    assert_eq!(id.xlogpos, Lsn(0x102));
    server.await.unwrap();
}

#[tokio::test]
async fn cancelled_command_is_finished_by_next_command() {
    let _watchdog = watchdog();
    let (l, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut m = accept(&l).await;
        m.trust("16.3").await;
        assert_eq!(m.msg().await, FrontendMsg::Query("IDENTIFY_SYSTEM".into()));
        // Answer slowly, in two pieces: the client has given up by then.
        tokio::time::sleep(Duration::from_millis(300)).await;
        m.send(&[t::row_description(&[
            ("systemid", 25),
            ("timeline", 20),
            ("xlogpos", 25),
            ("dbname", 25),
        ])])
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        m.send(&[
            t::data_row(&[Some("1"), Some("1"), Some("0/1"), None]),
            t::command_complete("IDENTIFY_SYSTEM"),
            t::ready(),
        ])
        .await;
        assert_eq!(
            m.msg().await,
            FrontendMsg::Query("SHOW wal_segment_size".into())
        );
        m.answer(&[("wal_segment_size", 25)], &[Some("16MB")], "SHOW")
            .await;
    });
    let cfg = config(&format!("host=127.0.0.1 port={port} sslmode=disable"));
    let mut c = ReplicationClient::connect(&cfg).await.unwrap();
    let cancelled = tokio::time::timeout(Duration::from_millis(100), c.identify_system()).await;
    assert!(
        cancelled.is_err(),
        "the command future was dropped mid-flight"
    );
    // The abandoned result is drained and discarded; the next command gets its own answer.
    assert_eq!(c.wal_segment_size().await.unwrap(), WalSegSize::DEFAULT);
    server.await.unwrap();
}

#[tokio::test]
async fn stream_error_is_typed() {
    let _watchdog = watchdog();
    let (l, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut m = accept(&l).await;
        m.trust("15.18 (Debian 15.18-0+deb12u1)").await;
        let _ = m.msg().await;
        m.send(&[
            t::copy_both(),
            t::error(&[
                (b'S', "ERROR"),
                (b'V', "ERROR"),
                (b'C', "58P01"),
                (
                    b'M',
                    "requested WAL segment 000000010000000000000001 has already been removed",
                ),
            ]),
            t::ready(),
        ])
        .await;
        assert_eq!(
            m.msg().await,
            FrontendMsg::Query("SHOW data_directory_mode".into())
        );
        m.answer(&[("data_directory_mode", 25)], &[Some("0700")], "SHOW")
            .await;
    });
    let cfg = config(&format!("host=127.0.0.1 port={port} sslmode=disable"));
    let mut c = ReplicationClient::connect(&cfg).await.unwrap();
    let opts = StreamOptions::default().status_interval(None);
    let mut stream = c
        .start_replication_with(&StartReplication::new(Lsn(0x100_0000)), opts)
        .await
        .unwrap();
    let e = stream.next_event().await.unwrap().unwrap_err();
    assert_eq!(e.code(), Some("58P01"));
    assert!(e.to_string().contains("has already been removed"));
    assert!(stream.next_event().await.is_none());
    drop(stream);
    assert_eq!(c.show("data_directory_mode").await.unwrap(), "0700");
    server.await.unwrap();
}

#[tokio::test]
async fn md5_and_wrong_password() {
    let _watchdog = watchdog();
    let (l, port) = listen().await;
    let server = tokio::spawn(async move {
        for (good, expect) in [(true, "pw"), (false, "bad")] {
            let mut m = accept(&l).await;
            m.startup().await;
            m.send(&[t::auth_md5([9, 8, 7, 6])]).await;
            let FrontendMsg::Password(p) = m.msg().await else {
                panic!()
            };
            assert_eq!(
                p,
                md5_hash(b"md5_user", expect.as_bytes(), [9, 8, 7, 6]).into_bytes()
            );
            if good {
                m.send(&[t::auth_ok()]).await;
                m.ready("13.23").await;
            } else {
                m.send(&[t::error(&[
                    (b'S', "FATAL"),
                    (b'V', "FATAL"),
                    (b'C', "28P01"),
                    (b'M', "password authentication failed for user \"md5_user\""),
                ])])
                .await;
            }
        }
    });
    let base = format!("host=127.0.0.1 port={port} sslmode=disable user=md5_user");
    let c = ReplicationClient::connect(&config(&format!("{base} password=pw")))
        .await
        .unwrap();
    assert_eq!(c.server_version().map(ServerVersion::major), Some(13));
    let e = ReplicationClient::connect(&config(&format!("{base} password=bad")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("28P01"), "{e}");
    assert_eq!(
        e.db_error().unwrap().message,
        "password authentication failed for user \"md5_user\""
    );
    server.await.unwrap();
}

#[tokio::test]
async fn password_from_pgpass_and_missing_password() {
    let _watchdog = watchdog();
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (l, port) = listen().await;
    let pgpass = dir.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!("127.0.0.1:{port}:replication:pass_user:from\\:file\n"),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = tokio::spawn(async move {
        let mut m = accept(&l).await;
        m.startup().await;
        m.send(&[t::auth_cleartext()]).await;
        assert_eq!(m.msg().await, FrontendMsg::Password(b"from:file".to_vec()));
        m.send(&[t::auth_ok()]).await;
        m.ready("18.1").await;
        // Second connection: the password file does not match this user.
        let mut m = accept(&l).await;
        m.startup().await;
        m.send(&[t::auth_cleartext()]).await;
    });
    let s = format!(
        "host=127.0.0.1 port={port} sslmode=disable user=pass_user passfile={}",
        pgpass.display()
    );
    ReplicationClient::connect(&config(&s)).await.unwrap();
    let s = format!(
        "host=127.0.0.1 port={port} sslmode=disable user=other passfile={}",
        pgpass.display()
    );
    let e = ReplicationClient::connect(&config(&s)).await.unwrap_err();
    assert!(matches!(e, Error::PasswordRequired), "{e}");
    server.await.unwrap();
}

#[tokio::test]
async fn hosts_are_tried_in_order() {
    let _watchdog = watchdog();
    let closed = {
        let (l, port) = listen().await;
        drop(l);
        port
    };
    let (l, port) = listen().await;
    let server = tokio::spawn(async move {
        let mut m = accept(&l).await;
        m.trust("16.0").await;
    });
    let cfg = config(&format!(
        "host=127.0.0.1,localhost hostaddr=127.0.0.1,127.0.0.1 port={closed},{port} sslmode=disable"
    ));
    let c = ReplicationClient::connect(&cfg).await.unwrap();
    assert_eq!(c.host().port, port);
    assert_eq!(c.peer_addr().map(|a| a.port()), Some(port));
    server.await.unwrap();

    // All fail: each attempt is listed, with libpq's wording.
    let cfg = config(&format!(
        "host=127.0.0.1,localhost hostaddr=127.0.0.1,127.0.0.1 port={closed} sslmode=disable"
    ));
    let e = ReplicationClient::connect(&cfg).await.unwrap_err();
    let Error::AllHostsFailed(v) = &e else {
        panic!("{e}")
    };
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].0, format!("at \"127.0.0.1\", port {closed}"));
    assert_eq!(
        v[1].0,
        format!("at \"localhost\" (127.0.0.1), port {closed}")
    );
    assert!(matches!(v[0].1, Error::Connect { .. }));
    // One host: its error itself.
    let cfg = config(&format!("host=127.0.0.1 port={closed} sslmode=disable"));
    let e = ReplicationClient::connect(&cfg).await.unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "connection to server at \"127.0.0.1\", port {closed} failed:"
        )),
        "{e}"
    );
}

#[tokio::test]
async fn connect_timeout() {
    let _watchdog = watchdog();
    let (l, port) = listen().await;
    let server = tokio::spawn(async move {
        // Accept, then say nothing.
        let m = accept(&l).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(m);
    });
    let cfg = config(&format!(
        "host=127.0.0.1 port={port} sslmode=disable connect_timeout=2"
    ));
    let started = std::time::Instant::now();
    let e = ReplicationClient::connect(&cfg).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(4));
    server.abort();
}

#[tokio::test]
async fn unix_socket_ignores_sslmode() {
    let _watchdog = watchdog();
    let dir = tempfile::tempdir().unwrap();
    let l = UnixListener::bind(dir.path().join(".s.PGSQL.5999")).unwrap();
    let server = tokio::spawn(async move {
        let mut m = Mock {
            s: l.accept().await.unwrap().0,
        };
        // No SSLRequest: the startup packet comes first.
        let p = m.trust("16.0").await;
        assert!(p.contains(&("replication".into(), "true".into())));
    });
    let cfg = config(&format!(
        "host={} port=5999 sslmode=verify-full",
        dir.path().display()
    ));
    let c = ReplicationClient::connect(&cfg).await.unwrap();
    assert!(!c.is_tls());
    assert!(c.peer_addr().is_none());
    server.await.unwrap();
}

#[tokio::test]
async fn sslmode_prefer_and_require_without_server_tls() {
    let _watchdog = watchdog();
    let (l, port) = listen().await;
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            let mut m = accept(&l).await;
            assert_eq!(
                m.exact(8).await,
                crate::replication::protocol::ssl_request()
            );
            m.send(&[b"N".to_vec()]).await;
            // prefer goes on in plain text on the same socket; require hangs up.
            let mut probe = [0u8; 1];
            if m.s.peek(&mut probe).await.unwrap_or(0) == 0 {
                continue;
            }
            m.trust("16.0").await;
        }
    });
    let base = format!("host=127.0.0.1 port={port} sslrootcert=/nonexistent");
    let c = ReplicationClient::connect(&config(&format!("{base} sslmode=prefer")))
        .await
        .unwrap();
    assert!(!c.is_tls());
    let e = ReplicationClient::connect(&config(&format!("{base} sslmode=require")))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TlsNotSupported), "{e}");
    drop(c);
    server.await.unwrap();
}

/// A CA and a server certificate for `localhost` / 127.0.0.1, written as PEM files.
struct Pki {
    ca_file: std::path::PathBuf,
    server: Arc<rustls::ServerConfig>,
    server_der: CertificateDer<'static>,
}

fn pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let srv_key = KeyPair::generate().unwrap();
    let srv_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let srv_cert = srv_params.signed_by(&srv_key, &issuer).unwrap();
    let ca_file = dir.join("ca.crt");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let server_der = srv_cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(srv_key.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![server_der.clone()], key)
    .unwrap();
    Pki {
        ca_file,
        server: Arc::new(server),
        server_der,
    }
}

/// Accepts one TLS connection and authenticates with SCRAM-SHA-256-PLUS, checking the
/// channel-binding data against the server certificate.
async fn tls_scram_server(l: &TcpListener, pki: &Pki) -> Result<(), String> {
    let (mut s, _) = l.accept().await.map_err(|e| e.to_string())?;
    let mut req = [0u8; 8];
    s.read_exact(&mut req).await.map_err(|e| e.to_string())?;
    assert_eq!(req, crate::replication::protocol::ssl_request());
    s.write_all(b"S").await.map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsAcceptor::from(pki.server.clone())
        .accept(s)
        .await
        .map_err(|e| e.to_string())?;
    let mut m = Mock { s: tls };
    m.startup().await;
    m.send(&[t::auth_sasl(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])])
        .await;
    let FrontendMsg::SaslInitial { mechanism, data } = m.msg().await else {
        return Err("no SASLInitialResponse".into());
    };
    assert_eq!(mechanism, "SCRAM-SHA-256-PLUS");
    let binding = server_end_point(&pki.server_der).unwrap();
    let mut scram = ScramServer::new("pencil", Some(binding));
    let first = scram.client_first(&data)?;
    m.send(&[t::sasl_continue(first.as_bytes())]).await;
    let FrontendMsg::SaslResponse(data) = m.msg().await else {
        return Err("no SASLResponse".into());
    };
    let fin = scram.client_final(&data)?;
    m.send(&[t::sasl_final(fin.as_bytes()), t::auth_ok()]).await;
    m.ready("17.2").await;
    assert_eq!(m.msg().await, FrontendMsg::Terminate);
    Ok(())
}

#[tokio::test]
async fn tls_verify_full_with_channel_binding() {
    let _watchdog = watchdog();
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(pki(dir.path()));
    let (l, port) = listen().await;
    let p2 = pki.clone();
    let server = tokio::spawn(async move { tls_scram_server(&l, &p2).await });
    let cfg = config(&format!(
        "host=localhost hostaddr=127.0.0.1 port={port} sslmode=verify-full sslrootcert={} \
         password=pencil channel_binding=require",
        pki.ca_file.display()
    ));
    let c = ReplicationClient::connect(&cfg).await.unwrap();
    assert!(c.is_tls());
    assert!(c.channel_binding_used());
    c.close().await.unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn tls_verify_full_rejects_wrong_host_name_but_verify_ca_accepts() {
    let _watchdog = watchdog();
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(pki(dir.path()));
    let (l, port) = listen().await;
    let p2 = pki.clone();
    let server = tokio::spawn(async move {
        // The first handshake fails on the client side.
        let first = tls_scram_server(&l, &p2).await;
        assert!(first.is_err());
        tls_scram_server(&l, &p2).await
    });
    let base = format!(
        "host=wrong.example hostaddr=127.0.0.1 port={port} sslrootcert={} password=pencil",
        pki.ca_file.display()
    );
    let e = ReplicationClient::connect(&config(&format!("{base} sslmode=verify-full")))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e}");
    assert!(
        e.to_string().contains("wrong.example") || e.to_string().contains("name"),
        "{e}"
    );
    let c = ReplicationClient::connect(&config(&format!("{base} sslmode=verify-ca")))
        .await
        .unwrap();
    assert!(c.is_tls() && c.channel_binding_used());
    c.close().await.unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn tls_unknown_ca() {
    let _watchdog = watchdog();
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(pki(dir.path()));
    let other_dir = tempfile::tempdir().unwrap();
    let other = crate::replication::client::tests::pki(other_dir.path());
    let (l, port) = listen().await;
    let p2 = pki.clone();
    let server = tokio::spawn(async move {
        let first = tls_scram_server(&l, &p2).await;
        assert!(first.is_err());
        tls_scram_server(&l, &p2).await
    });
    // verify-ca against another CA fails...
    let s = format!(
        "host=localhost hostaddr=127.0.0.1 port={port} sslmode=verify-ca sslrootcert={} password=pencil",
        other.ca_file.display()
    );
    let e = ReplicationClient::connect(&config(&s)).await.unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e}");
    // ...and require without a root file does not verify at all.
    let s = format!(
        "host=localhost hostaddr=127.0.0.1 port={port} sslmode=require sslrootcert=/nonexistent password=pencil"
    );
    let c = ReplicationClient::connect(&config(&s)).await.unwrap();
    assert!(c.is_tls());
    c.close().await.unwrap();
    server.await.unwrap().unwrap();
}
