//! The replication client against real PostgreSQL servers, every installed major 13–19.
//!
//! One cluster per major (1 MB segments, the kit's auth users, TLS with a generated CA), then
//! a streaming standby that is promoted for the timeline tests. Each major is its own test so
//! they run in parallel and a failure names the major.

// Test helpers outside #[test] functions: failing loudly is the point.
#![cfg(feature = "replication")]
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use pgwal::conninfo::{Config, MapEnvironment, ProtocolVersion};
use pgwal::replication::{
    CreateSlotOptions, Error, ReplicationClient, ReplicationEvent, ReplicationStream, SlotName,
    StartReplication, StreamOptions,
};
use pgwal::{Lsn, TimelineId, WalSegSize};
use pgwal_testkit::{Cluster, Major, MD5_USER, PASS_USER, SCRAM_USER, SSL_USER, TRUST_USER};

/// A fixed environment, so the developer's own `~/.pgpass`, `~/.postgresql` and `PG*`
/// variables cannot influence the tests.
fn env(home: &Path) -> MapEnvironment {
    MapEnvironment::new().with_user("postgres").with_home(home)
}

struct Ctx {
    pg: Cluster,
    home: tempfile::TempDir,
}

impl Ctx {
    fn config(&self, extra: &str) -> Config {
        let s = format!("host=127.0.0.1 port={} {extra}", self.pg.port());
        Config::parse_with_env(&s, &env(self.home.path()))
            .unwrap_or_else(|e| panic!("bad test conninfo {s:?}: {e}"))
    }

    async fn connect(&self, extra: &str) -> Result<ReplicationClient, Error> {
        ReplicationClient::connect(&self.config(extra)).await
    }

    async fn must_connect(&self, extra: &str) -> ReplicationClient {
        match self.connect(extra).await {
            Ok(c) => c,
            Err(e) => panic!(
                "connect ({extra}) to PostgreSQL {} failed: {e}\n--- server log ---\n{}",
                self.pg.major(),
                self.pg.server_log_tail(20)
            ),
        }
    }
}

fn lsn(s: &str) -> Lsn {
    s.parse().unwrap_or_else(|_| panic!("not an LSN: {s:?}"))
}

/// The bytes of `[from, to)` of timeline `tli`, read from the segment files in `pg_wal`.
fn wal_from_files(pg_wal: &Path, tli: TimelineId, from: Lsn, to: Lsn, seg: WalSegSize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < to {
        let segno = pos.segment(seg);
        let name = segno.file_name(tli, seg);
        let bytes = std::fs::read(pg_wal.join(&name))
            .unwrap_or_else(|e| panic!("read {name} from {}: {e}", pg_wal.display()));
        assert_eq!(bytes.len() as u64, seg.bytes(), "{name} size");
        let start = pos.segment_offset(seg) as usize;
        let seg_end = pos.segment_start(seg).0 + seg.bytes();
        let end = (to.0.min(seg_end) - pos.segment_start(seg).0) as usize;
        out.extend_from_slice(&bytes[start..end]);
        pos = Lsn(seg_end);
    }
    out
}

/// Reads the stream until `end` has been received (or the stream ends), checking that the
/// chunks are contiguous from `start`. Returns the bytes from `start` and the last event
/// that was not WAL, if the stream ended with one.
async fn collect_until(
    stream: &mut ReplicationStream<'_>,
    start: Lsn,
    end: Option<Lsn>,
) -> (Vec<u8>, Option<ReplicationEvent>) {
    let mut data = Vec::new();
    let mut next = start;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if end.is_some_and(|e| next >= e) {
            return (data, None);
        }
        let ev = tokio::time::timeout_at(deadline, stream.next_event())
            .await
            .expect("streaming timed out");
        match ev {
            None => return (data, None),
            Some(Err(e)) => panic!("stream error: {e}"),
            Some(Ok(ReplicationEvent::XLogData(x))) => {
                assert_eq!(x.start, next, "WAL chunks must be contiguous");
                data.extend_from_slice(&x.data);
                next = x.end;
            }
            Some(Ok(ReplicationEvent::Keepalive(_))) => {}
            Some(Ok(other)) => return (data, Some(other)),
        }
    }
}

/// The end of the segment that holds the byte before `lsn` (where a `pg_switch_wal()` that
/// returned `lsn` completed its segment).
fn completed_segment_end(lsn: Lsn, seg: WalSegSize) -> Lsn {
    Lsn(Lsn(lsn.0 - 1).segment_start(seg).0 + seg.bytes())
}

async fn run(major: Major) {
    if pgwal_testkit::require_major(major).is_none() {
        return;
    }
    let pg = Cluster::builder(major)
        .wal_segsize_mb(1)
        .auth_users()
        .ssl_test_certs()
        .start()
        .unwrap_or_else(|e| panic!("starting PostgreSQL {major}: {e}"));
    let ctx = Ctx {
        pg,
        home: tempfile::tempdir().unwrap(),
    };
    auth(&ctx).await;
    protocol_versions(&ctx).await;
    tls(&ctx).await;
    commands(&ctx).await;
    streaming(&ctx).await;
    keepalives(&ctx).await;
    timelines(&ctx).await;
}

/// Every authentication method; wrong passwords and refused connections keep the server's
/// message and SQLSTATE.
async fn auth(ctx: &Ctx) {
    for u in [TRUST_USER, PASS_USER, MD5_USER, SCRAM_USER] {
        let mut c = ctx
            .must_connect(&format!(
                "sslmode=disable user={} password={}",
                u.name, u.password
            ))
            .await;
        assert!(!c.is_tls());
        let id = c.identify_system().await.unwrap();
        assert_eq!(
            id.dbname, None,
            "a physical replication connection has no database"
        );
        c.close().await.unwrap();
    }
    // trust needs no password at all.
    ctx.must_connect(&format!("sslmode=disable user={}", TRUST_USER.name))
        .await;

    for u in [PASS_USER, MD5_USER, SCRAM_USER] {
        let e = ctx
            .connect(&format!("sslmode=disable user={} password=wrong", u.name))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("28P01"), "{}: {e}", u.name);
        let db = e.db_error().unwrap();
        assert_eq!(db.severity, "FATAL");
        assert_eq!(
            db.message,
            format!("password authentication failed for user \"{}\"", u.name)
        );
        // No password at all: the client says so instead of sending an empty one.
        let e = ctx
            .connect(&format!("sslmode=disable user={}", u.name))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::PasswordRequired), "{}: {e}", u.name);
    }

    // The password file, with libpq's matching rules.
    let pgpass = ctx.home.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "127.0.0.1:{}:replication:{}:{}\n",
            ctx.pg.port(),
            SCRAM_USER.name,
            SCRAM_USER.password
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    ctx.must_connect(&format!(
        "sslmode=disable user={} passfile={}",
        SCRAM_USER.name,
        pgpass.display()
    ))
    .await;

    // A connection service (~/.pg_service.conf): its group fills what the string leaves
    // unset; the string's own values win.
    std::fs::write(
        ctx.home.path().join(".pg_service.conf"),
        format!(
            "# pgwal test\n[other]\nport=1\n[it]\nhost=127.0.0.1\nport={}\nuser={}\npassword={}\n\
             sslmode=disable\n",
            ctx.pg.port(),
            SCRAM_USER.name,
            SCRAM_USER.password
        ),
    )
    .unwrap();
    let cfg = Config::parse_with_env("service=it", &env(ctx.home.path())).unwrap();
    let mut c = ReplicationClient::connect(&cfg).await.unwrap();
    c.identify_system().await.unwrap();
    let cfg = Config::parse_with_env(
        &format!("service=it user={} password=x", MD5_USER.name),
        &env(ctx.home.path()),
    )
    .unwrap();
    let e = ReplicationClient::connect(&cfg).await.unwrap_err();
    assert_eq!(
        e.code(),
        Some("28P01"),
        "the string's user and password: {e}"
    );

    // A pg_hba.conf row refuses ssl_user without TLS: SQLSTATE 28000 and the server's words.
    let e = ctx
        .connect(&format!(
            "sslmode=disable user={} password={}",
            SSL_USER.name, SSL_USER.password
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("28000"), "{e}");
    assert!(
        e.db_error()
            .unwrap()
            .message
            .contains("pg_hba.conf rejects replication connection"),
        "{e}"
    );
    // A role that does not exist.
    let e = ctx
        .connect("sslmode=disable user=no_such_role")
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("28000"), "{e}");

    // The Unix socket (local trust rows).
    let s = format!(
        "host={} port={} user=postgres",
        ctx.pg.socket_dir().display(),
        ctx.pg.port()
    );
    let cfg = Config::parse_with_env(&s, &env(ctx.home.path())).unwrap();
    let mut c = ReplicationClient::connect(&cfg).await.unwrap();
    assert!(c.peer_addr().is_none() && !c.is_tls());
    c.identify_system().await.unwrap();
}

/// The newest protocol version a server of `major` speaks.
fn newest_protocol(major: Major) -> ProtocolVersion {
    if major.number() >= 18 {
        ProtocolVersion::V3_2
    } else {
        ProtocolVersion::V3_0
    }
}

/// libpq 18's `min_protocol_version` / `max_protocol_version`: 3.0 by default; 3.2 asked for
/// is spoken by 18 and newer (a 32-byte cancel key) and negotiated down to 3.0 by older
/// servers, unless the minimum forbids it.
async fn protocol_versions(ctx: &Ctx) {
    let major = ctx.pg.major();
    let key_len = |c: &ReplicationClient| c.protocol().backend_key().map(|(_, k)| k.len());
    let mut c = ctx.must_connect("sslmode=disable user=postgres").await;
    assert_eq!(c.protocol_version(), ProtocolVersion::V3_0);
    assert_eq!(key_len(&c), Some(4));
    c.identify_system().await.unwrap();
    for extra in ["max_protocol_version=3.2", "max_protocol_version=latest"] {
        let mut c = ctx
            .must_connect(&format!(
                "sslmode=require user={} password={} {extra}",
                SCRAM_USER.name, SCRAM_USER.password
            ))
            .await;
        let newest = newest_protocol(major);
        assert_eq!(c.protocol_version(), newest, "{major} {extra}");
        let want = if newest == ProtocolVersion::V3_2 {
            32
        } else {
            4
        };
        assert_eq!(key_len(&c), Some(want), "{major} {extra}");
        assert!(c.is_tls());
        c.identify_system().await.unwrap();
    }
    let r = ctx
        .connect("sslmode=disable user=postgres min_protocol_version=3.2")
        .await;
    if major.number() >= 18 {
        let mut c = r.unwrap();
        assert_eq!(c.protocol_version(), ProtocolVersion::V3_2);
        c.identify_system().await.unwrap();
    } else {
        let e = r.unwrap_err();
        assert!(
            e.to_string().contains(
                "server only supports protocol version 3.0, but \"min_protocol_version\" was set to 3.2"
            ),
            "{major}: {e}"
        );
    }
}

/// TLS per sslmode, verified against the kit's CA, with SCRAM channel binding.
async fn tls(ctx: &Ctx) {
    let certs = ctx
        .pg
        .test_certs()
        .expect("the cluster has test certificates");
    let ca = certs.ca_cert.display().to_string();
    let scram = format!("user={} password={}", SCRAM_USER.name, SCRAM_USER.password);

    let mut c = ctx
        .must_connect(&format!(
            "host=localhost hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={ca} {scram}"
        ))
        .await;
    assert!(c.is_tls());
    assert!(c.channel_binding_used(), "SCRAM-SHA-256-PLUS over TLS");
    c.identify_system().await.unwrap();
    c.close().await.unwrap();
    ctx.must_connect(&format!(
        "host=127.0.0.1 sslmode=verify-full sslrootcert={ca} channel_binding=require {scram}"
    ))
    .await;

    // sslnegotiation=direct (libpq 17): TLS at once with ALPN, which servers from 17 on take
    // (channel binding and the full check included); older ones cannot answer it.
    let direct = format!(
        "host=localhost hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={ca} \
         sslnegotiation=direct {scram}"
    );
    if ctx.pg.major().number() >= 17 {
        let mut c = ctx.must_connect(&direct).await;
        assert!(c.is_tls() && c.channel_binding_used());
        c.identify_system().await.unwrap();
    } else {
        let e = ctx.connect(&direct).await.unwrap_err();
        assert!(matches!(e, Error::Tls(_)), "{}: {e}", ctx.pg.major());
    }

    // verify-full checks the host name; verify-ca does not.
    let wrong = format!("host=wrong.example hostaddr=127.0.0.1 sslrootcert={ca} {scram}");
    let e = ctx
        .connect(&format!("{wrong} sslmode=verify-full"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e}");
    let c = ctx
        .must_connect(&format!("{wrong} sslmode=verify-ca"))
        .await;
    assert!(c.is_tls());

    // require without a root certificate: encrypted, unverified.
    let c = ctx
        .must_connect(&format!("sslmode=require sslrootcert=/nonexistent {scram}"))
        .await;
    assert!(c.is_tls());
    // A root certificate file that exists makes "require" verify the chain (as libpq).
    let other = pgwal_testkit::TestCerts::generate(ctx.home.path().join("other")).unwrap();
    let e = ctx
        .connect(&format!(
            "sslmode=require sslrootcert={} {scram}",
            other.ca_cert.display()
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e}");

    // ssl_user may only come over TLS: prefer gets it there.
    let c = ctx
        .must_connect(&format!(
            "sslmode=prefer sslrootcert=/nonexistent user={} password={}",
            SSL_USER.name, SSL_USER.password
        ))
        .await;
    assert!(c.is_tls());
    // allow tries plain text first, is refused, then succeeds with TLS.
    let c = ctx
        .must_connect(&format!(
            "sslmode=allow sslrootcert=/nonexistent user={} password={}",
            SSL_USER.name, SSL_USER.password
        ))
        .await;
    assert!(c.is_tls());

    // Client-certificate authentication.
    let mut c = ctx
        .must_connect(&format!(
            "host=localhost hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={ca} \
             user=cert_user sslcert={} sslkey={}",
            certs.client_cert.display(),
            certs.client_key.display()
        ))
        .await;
    assert!(c.is_tls());
    c.identify_system().await.unwrap();
}

/// IDENTIFY_SYSTEM, SHOW and the slot commands, checked against SQL.
async fn commands(ctx: &Ctx) {
    let pg = &ctx.pg;
    let mut c = ctx.must_connect("sslmode=disable user=postgres").await;
    let version = c.server_version().unwrap();
    assert_eq!(version.major(), pg.major().number());

    let before = lsn(&pg.query_one_string("SELECT pg_current_wal_lsn()").await);
    let id = c.identify_system().await.unwrap();
    let after = lsn(&pg.query_one_string("SELECT pg_current_wal_lsn()").await);
    let sysid = pg
        .query_one_string("SELECT system_identifier FROM pg_control_system()")
        .await;
    assert_eq!(id.system_id.to_string(), sysid);
    assert_eq!(id.timeline, TimelineId(1));
    assert!(
        before <= id.xlogpos && id.xlogpos <= after,
        "{before} <= {} <= {after}",
        id.xlogpos
    );
    assert_eq!(
        c.wal_segment_size().await.unwrap(),
        WalSegSize::new(1 << 20).unwrap()
    );
    assert_eq!(c.show("wal_level").await.unwrap(), "replica");
    assert!(matches!(
        c.show("x; DROP").await,
        Err(Error::InvalidArgument(_))
    ));

    // A reserving slot has a restart_lsn at once.
    let slot = SlotName::new("pgwal_it_reserved").unwrap();
    let created = c
        .create_replication_slot(
            &slot,
            CreateSlotOptions {
                reserve_wal: true,
                ..CreateSlotOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(created.slot_name, slot.as_str());
    let restart = pg
        .query_one_string(
            "SELECT coalesce(restart_lsn::text, 'NULL') FROM pg_replication_slots \
             WHERE slot_name = 'pgwal_it_reserved'",
        )
        .await;
    assert_ne!(restart, "NULL");
    let read = c.read_replication_slot(&slot).await;
    if pg.major() >= Major::V15 {
        let info = read.unwrap();
        assert_eq!(info.slot_type.as_deref(), Some("physical"));
        assert_eq!(info.restart_lsn, Some(lsn(&restart)));
        assert_eq!(info.restart_tli, Some(TimelineId(1)));
        let missing = c
            .read_replication_slot(&SlotName::new("pgwal_it_missing").unwrap())
            .await
            .unwrap();
        assert!(!missing.exists());
    } else {
        assert!(
            matches!(read, Err(Error::UnsupportedByServer { .. })),
            "{read:?}"
        );
    }

    // A plain slot keeps nothing until feedback; a temporary one vanishes with the session.
    let plain = SlotName::new("pgwal_it_plain").unwrap();
    c.create_replication_slot(&plain, CreateSlotOptions::default())
        .await
        .unwrap();
    let temp = SlotName::new("pgwal_it_temp").unwrap();
    c.create_replication_slot(
        &temp,
        CreateSlotOptions {
            temporary: true,
            reserve_wal: true,
        },
    )
    .await
    .unwrap();
    let rows = pg
        .query_one_string(
            "SELECT string_agg(slot_name || ':' || temporary || ':' || (restart_lsn IS NULL), ',' \
             ORDER BY slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'pgwal_it_%'",
        )
        .await;
    assert_eq!(
        rows,
        "pgwal_it_plain:false:true,pgwal_it_reserved:false:false,pgwal_it_temp:true:false"
    );
    c.drop_replication_slot(&plain, false).await.unwrap();
    c.drop_replication_slot(&slot, true).await.unwrap();
    let e = c.drop_replication_slot(&plain, false).await.unwrap_err();
    assert_eq!(e.code(), Some("42704"), "{e}");
    // The connection is still usable after the error.
    c.identify_system().await.unwrap();
    c.close().await.unwrap();
    let left = pg
        .query_one_string(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pgwal_it_%'",
        )
        .await;
    assert_eq!(left, "0", "the temporary slot is gone with its session");
}

/// Streamed bytes equal the server's segment files; feedback shows up in
/// pg_stat_replication and moves the slot.
async fn streaming(ctx: &Ctx) {
    let pg = &ctx.pg;
    let seg = WalSegSize::new(1 << 20).unwrap();
    let app = format!("pgwal_it_{}", pg.major().number());
    // Streamed in the newest protocol the server speaks (3.2 from 18 on); the other steps use
    // libpq's default, 3.0.
    let mut c = ctx
        .must_connect(&format!(
            "sslmode=disable user=postgres application_name={app} max_protocol_version=latest"
        ))
        .await;
    assert_eq!(c.protocol_version(), newest_protocol(pg.major()));
    let slot = SlotName::new("pgwal_it_stream").unwrap();
    c.create_replication_slot(
        &slot,
        CreateSlotOptions {
            reserve_wal: true,
            ..CreateSlotOptions::default()
        },
    )
    .await
    .unwrap();
    let restart = lsn(&pg
        .query_one_string(
            "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'pgwal_it_stream'",
        )
        .await);
    pg.sql_load(3000).await;
    let switched = Lsn(pg.switch_wal().await);
    let end = completed_segment_end(switched, seg);
    let start = restart.segment_start(seg);
    assert!(end > start);

    let cmd = StartReplication::new(start)
        .slot(slot.clone())
        .timeline(TimelineId(1));
    let opts = StreamOptions::default().report_received_as_written(false);
    let mut stream = c.start_replication_with(&cmd, opts).await.unwrap();
    let (data, other) = collect_until(&mut stream, start, Some(end)).await;
    assert!(other.is_none());
    assert!(data.len() as u64 >= end.0 - start.0);
    let expected = wal_from_files(&pg.pg_wal_dir(), TimelineId(1), start, end, seg);
    let got = &data[..(end.0 - start.0) as usize];
    assert!(
        got == &expected[..],
        "streamed WAL differs from pg_wal over {start}..{end}"
    );
    eprintln!(
        "PostgreSQL {}: streamed {start}..{end} ({} bytes) equal to pg_wal",
        pg.major(),
        got.len()
    );

    // Report progress; the walsender shows it and the slot follows the flush position.
    let fb = stream.feedback();
    let apply = Lsn(end.0 - 8);
    fb.set_write(end);
    fb.set_flush(end);
    fb.set_apply(apply);
    stream.send_status(false).await.unwrap();
    // Compared as LSNs: 19 prints pg_lsn zero-padded (`0/03000000`), older majors do not.
    let at = |r: &Vec<Option<String>>, i: usize| r.get(i).cloned().flatten().map(|t| lsn(&t));
    pg.wait_until(
        "pg_stat_replication to show the reported positions",
        &format!(
            "SELECT write_lsn::text, flush_lsn::text, replay_lsn::text FROM pg_stat_replication \
             WHERE application_name = '{app}'"
        ),
        |rows| {
            rows.first().is_some_and(|r| {
                at(r, 0) == Some(end) && at(r, 1) == Some(end) && at(r, 2) == Some(apply)
            })
        },
    )
    .unwrap();
    let restart = lsn(&pg
        .query_one_string(
            "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'pgwal_it_stream'",
        )
        .await);
    assert_eq!(
        restart, end,
        "a physical slot's restart_lsn follows the flush position"
    );

    // Stop from the client side; the stream drains and the connection is usable again.
    stream.stop();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Some(ev) = tokio::time::timeout_at(deadline, stream.next_event())
        .await
        .expect("stop timed out")
    {
        ev.unwrap();
    }
    drop(stream);
    let id = c.identify_system().await.unwrap();
    assert!(id.xlogpos >= end);
    c.drop_replication_slot(&slot, false).await.unwrap();
}

/// With a short `wal_sender_timeout` and no periodic status updates, the automatic answers
/// to keepalives keep the stream alive; without them the server drops the client.
async fn keepalives(ctx: &Ctx) {
    let pg = &ctx.pg;
    let seg = WalSegSize::new(1 << 20).unwrap();
    let set_timeout = |v: &str| {
        pg.set_config("wal_sender_timeout", v).unwrap();
        pg.reload().unwrap();
        let want = v.to_owned();
        pg.wait_until(
            "wal_sender_timeout to change",
            "SHOW wal_sender_timeout",
            |rows| rows.first().and_then(|r| r.first()).cloned().flatten() == Some(want.clone()),
        )
        .unwrap();
    };
    set_timeout("2s");
    for reply in [true, false] {
        let mut c = ctx.must_connect("sslmode=disable user=postgres").await;
        let id = c.identify_system().await.unwrap();
        let opts = StreamOptions::default()
            .status_interval(None)
            .reply_to_keepalives(reply);
        let cmd = StartReplication::new(id.xlogpos.segment_start(seg));
        let mut stream = c.start_replication_with(&cmd, opts).await.unwrap();
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut requests = 0;
        let mut failure = None;
        loop {
            match tokio::time::timeout_at(until, stream.next_event()).await {
                Err(_) => break,
                Ok(Some(Ok(ReplicationEvent::Keepalive(k)))) if k.reply_requested => requests += 1,
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => {
                    failure = Some(e);
                    break;
                }
                Ok(None) => panic!("the stream ended by itself"),
            }
        }
        assert!(requests >= 1, "the server asks for replies (reply={reply})");
        if reply {
            assert!(failure.is_none(), "{failure:?}");
            stream.stop();
            while let Some(ev) = stream.next_event().await {
                ev.unwrap();
            }
            drop(stream);
            c.identify_system().await.unwrap();
        } else {
            let e = failure.expect("without replies the walsender times out");
            assert!(!e.is_recoverable(), "{e}");
        }
    }
    set_timeout("1min");
}

/// TIMELINE_HISTORY after a promotion, and streaming across the timeline switch on one
/// connection, checked byte for byte.
async fn timelines(ctx: &Ctx) {
    let pg = &ctx.pg;
    let seg = WalSegSize::new(1 << 20).unwrap();
    let standby = pg
        .create_standby()
        .unwrap_or_else(|e| panic!("standby of PostgreSQL {}: {e}", pg.major()));
    pg.sql_load(500).await;
    pg.wait_for_catchup(&standby).unwrap();
    standby.promote().unwrap();

    let s = format!(
        "host=127.0.0.1 port={} user=postgres sslmode=disable",
        standby.port()
    );
    let cfg = Config::parse_with_env(&s, &env(ctx.home.path())).unwrap();
    let mut c = ReplicationClient::connect(&cfg).await.unwrap();
    let id = c.identify_system().await.unwrap();
    assert_eq!(id.timeline, TimelineId(2));

    let h = c.timeline_history(TimelineId(2)).await.unwrap();
    assert_eq!(h.filename, "00000002.history");
    let on_disk = std::fs::read(standby.pg_wal_dir().join("00000002.history")).unwrap();
    assert_eq!(&h.content[..], &on_disk[..]);
    assert_eq!(h.history.entries.len(), 1);
    assert_eq!(h.history.entries[0].tli, TimelineId(1));
    let switch = h.history.entries[0].switchpoint;
    // Timeline 1 has no history file.
    let e = c.timeline_history(TimelineId(1)).await.unwrap_err();
    assert!(e.code().is_some(), "{e}");

    // Stream timeline 1 from its last segment: it ends at the switch point.
    let start = switch.segment_start(seg);
    let cmd = StartReplication::new(start).timeline(TimelineId(1));
    let mut stream = c.start_replication(&cmd).await.unwrap();
    let (old, other) = collect_until(&mut stream, start, None).await;
    assert_eq!(
        other,
        Some(ReplicationEvent::TimelineEnded {
            next_tli: TimelineId(2),
            next_start: switch
        })
    );
    assert!(stream.next_event().await.is_none());
    drop(stream);
    assert_eq!(
        start.0 + old.len() as u64,
        switch.0,
        "timeline 1 ends at the switch point"
    );
    // The new timeline's first segment starts with a copy of the old one up to the switch.
    let expected = wal_from_files(&standby.pg_wal_dir(), TimelineId(2), start, switch, seg);
    assert!(
        old == expected,
        "timeline 1 bytes differ from the segment prefix"
    );
    eprintln!(
        "PostgreSQL {}: timeline 1 streamed {start}..{switch} ({} bytes), then TimelineEnded",
        pg.major(),
        old.len()
    );

    // Same connection, next timeline: the bytes match the new timeline's files.
    standby.sql_load(500).await;
    let switched = Lsn(standby.switch_wal().await);
    let end = completed_segment_end(switched, seg);
    let cmd = StartReplication::new(start).timeline(TimelineId(2));
    let mut stream = c.start_replication(&cmd).await.unwrap();
    let (new, other) = collect_until(&mut stream, start, Some(end)).await;
    assert!(other.is_none());
    let expected = wal_from_files(&standby.pg_wal_dir(), TimelineId(2), start, end, seg);
    assert!(
        new[..(end.0 - start.0) as usize] == expected[..],
        "timeline 2 bytes differ over {start}..{end}"
    );
    eprintln!(
        "PostgreSQL {}: timeline 2 streamed {start}..{end} equal to pg_wal",
        pg.major()
    );
    drop(stream);
    c.identify_system().await.unwrap();
}

macro_rules! per_major {
    ($($name:ident => $major:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            run(Major::$major).await;
        }
    )*};
}

per_major! {
    replication_pg13 => V13,
    replication_pg14 => V14,
    replication_pg15 => V15,
    replication_pg16 => V16,
    replication_pg17 => V17,
    replication_pg18 => V18,
    replication_pg19 => V19,
}
