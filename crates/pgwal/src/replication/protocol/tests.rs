//! Byte-level tests of the protocol core: a scripted server on one side, the frontend bytes
//! checked on the other.

use super::*;
use crate::replication::testutil::{self as t, FrontendMsg, ScramServer};
use crate::{Lsn, TimelineId};

fn drain(p: &mut Protocol) -> Result<Vec<Event>, Error> {
    let mut out = Vec::new();
    while let Some(e) = p.next_event()? {
        out.push(e);
    }
    Ok(out)
}

fn startup_done(p: &mut Protocol) {
    p.receive(&t::param_status("server_version", "16.4"));
    p.receive(&t::param_status("integer_datetimes", "on"));
    p.receive(&t::backend_key(4242, 77));
    p.receive(&t::ready());
    let ev = drain(p).unwrap();
    assert_eq!(ev.last(), Some(&Event::Connected));
    assert!(p.is_idle());
}

fn connected() -> Protocol {
    let mut p = Protocol::new(StartupConfig::new("rep")).unwrap();
    p.take_output();
    p.receive(&t::auth_ok());
    startup_done(&mut p);
    p
}

fn config(user: &str, password: Option<&str>) -> StartupConfig {
    let mut c = StartupConfig::new(user);
    c.password = password.map(|p| p.as_bytes().to_vec());
    c
}

#[test]
fn ssl_negotiation_bytes() {
    assert_eq!(ssl_request(), [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]);
    assert!(ssl_response(b'S').unwrap());
    assert!(!ssl_response(b'N').unwrap());
    assert!(ssl_response(b'E').is_err());
    assert!(ssl_response(b'X').is_err());
}

#[test]
fn startup_packet() {
    let mut c = StartupConfig::new("rep");
    c.database = Some("replication".into());
    c.application_name = Some("pgwal receive".into());
    c.options = Some("-c wal_sender_timeout=0".into());
    let mut p = Protocol::new(c).unwrap();
    let out = p.take_output();
    let params = t::parse_startup(&out);
    assert_eq!(
        params,
        vec![
            ("user".to_owned(), "rep".to_owned()),
            ("database".to_owned(), "replication".to_owned()),
            ("replication".to_owned(), "true".to_owned()),
            ("application_name".to_owned(), "pgwal receive".to_owned()),
            ("options".to_owned(), "-c wal_sender_timeout=0".to_owned()),
        ]
    );
    assert!(p.is_starting());
    // A NUL in a parameter cannot be encoded.
    assert!(Protocol::new(StartupConfig::new("a\0b")).is_err());
}

#[test]
fn trust_auth() {
    let mut p = Protocol::new(StartupConfig::new("trust_user")).unwrap();
    p.take_output();
    p.receive(&t::auth_ok());
    p.receive(&t::param_status(
        "server_version",
        "15.18 (Debian 15.18-0+deb12u1)",
    ));
    p.receive(&t::backend_key(1, 2));
    p.receive(&t::ready());
    let ev = drain(&mut p).unwrap();
    assert_eq!(
        ev,
        vec![
            Event::ParameterStatus {
                name: "server_version".into(),
                value: "15.18 (Debian 15.18-0+deb12u1)".into()
            },
            Event::Connected
        ]
    );
    assert_eq!(p.server_version(), Some(ServerVersion(150018)));
    assert_eq!(p.backend_key(), Some((1, &2i32.to_be_bytes()[..])));
    assert!(!p.channel_binding_used());
    assert!(!p.has_output());
}

#[test]
fn cleartext_auth() {
    let mut p = Protocol::new(config("pass_user", Some("s3cret"))).unwrap();
    p.take_output();
    p.receive(&t::auth_cleartext());
    assert_eq!(drain(&mut p).unwrap(), vec![]);
    // 'p' | len 11 | "s3cret\0"
    assert_eq!(&p.take_output()[..], b"p\0\0\0\x0bs3cret\0");
    p.receive(&t::auth_ok());
    startup_done(&mut p);
}

#[test]
fn md5_auth() {
    let mut p = Protocol::new(config("md5_user", Some("pw"))).unwrap();
    p.take_output();
    p.receive(&t::auth_md5([1, 2, 3, 4]));
    drain(&mut p).unwrap();
    let out = p.take_output();
    let msgs = t::parse_frontend(&out);
    let expected = md5_hash(b"md5_user", b"pw", [1, 2, 3, 4]);
    assert!(expected.starts_with("md5") && expected.len() == 35);
    assert_eq!(msgs, vec![FrontendMsg::Password(expected.into_bytes())]);
}

#[test]
fn password_required() {
    for req in [
        t::auth_cleartext(),
        t::auth_md5([0; 4]),
        t::auth_sasl(&["SCRAM-SHA-256"]),
    ] {
        let mut p = Protocol::new(config("u", None)).unwrap();
        p.receive(&req);
        assert!(matches!(p.next_event(), Err(Error::PasswordRequired)));
        assert!(p.is_closed());
        assert!(matches!(p.next_event(), Err(Error::Closed)));
    }
}

#[test]
fn wrong_password_surfaces_server_error() {
    let mut p = Protocol::new(config("pass_user", Some("wrong"))).unwrap();
    p.receive(&t::auth_cleartext());
    drain(&mut p).unwrap();
    p.receive(&t::error(&[
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "28P01"),
        (
            b'M',
            "password authentication failed for user \"pass_user\"",
        ),
        (b'F', "auth.c"),
        (b'L', "323"),
        (b'R', "auth_failed"),
    ]));
    let e = p.next_event().unwrap_err();
    let db = e.db_error().unwrap();
    assert_eq!(db.code, "28P01");
    assert_eq!(db.severity, "FATAL");
    assert_eq!(
        db.message,
        "password authentication failed for user \"pass_user\""
    );
    assert_eq!(db.line, Some(323));
    assert_eq!(db.routine.as_deref(), Some("auth_failed"));
    assert!(p.is_closed());
}

#[test]
fn no_hba_row_error() {
    let mut p = Protocol::new(StartupConfig::new("nobody")).unwrap();
    p.receive(&t::error(&[
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "28000"),
        (
            b'M',
            "no pg_hba.conf entry for replication connection from host \"127.0.0.1\", user \"nobody\", no encryption",
        ),
    ]));
    let e = p.next_event().unwrap_err();
    assert_eq!(e.code(), Some("28000"));
    assert!(e.to_string().contains("no pg_hba.conf entry"));
}

#[test]
fn scram_sha_256() {
    let mut p = Protocol::new(config("scram_user", Some("pencil"))).unwrap();
    p.take_output();
    p.receive(&t::auth_sasl(&["SCRAM-SHA-256"]));
    drain(&mut p).unwrap();
    let msgs = t::parse_frontend(&p.take_output());
    let FrontendMsg::SaslInitial { mechanism, data } = &msgs[0] else {
        panic!("{msgs:?}")
    };
    assert_eq!(mechanism, "SCRAM-SHA-256");
    // No TLS: gs2 header "n,,".
    assert!(data.starts_with(b"n,,n=,r="));
    let mut server = ScramServer::new("pencil", None);
    let first = server.client_first(data).unwrap();
    p.receive(&t::sasl_continue(first.as_bytes()));
    drain(&mut p).unwrap();
    let msgs = t::parse_frontend(&p.take_output());
    let FrontendMsg::SaslResponse(data) = &msgs[0] else {
        panic!("{msgs:?}")
    };
    let fin = server.client_final(data).unwrap();
    p.receive(&t::sasl_final(fin.as_bytes()));
    p.receive(&t::auth_ok());
    startup_done(&mut p);
    assert!(!p.channel_binding_used());
}

#[test]
fn scram_wrong_server_signature() {
    let mut p = Protocol::new(config("scram_user", Some("pencil"))).unwrap();
    p.take_output();
    p.receive(&t::auth_sasl(&["SCRAM-SHA-256"]));
    drain(&mut p).unwrap();
    let msgs = t::parse_frontend(&p.take_output());
    let FrontendMsg::SaslInitial { data, .. } = &msgs[0] else {
        panic!()
    };
    // The server knows a different password: its signature cannot verify.
    let mut server = ScramServer::new("other", None);
    let first = server.client_first(data).unwrap();
    p.receive(&t::sasl_continue(first.as_bytes()));
    drain(&mut p).unwrap();
    let msgs = t::parse_frontend(&p.take_output());
    let FrontendMsg::SaslResponse(data) = &msgs[0] else {
        panic!()
    };
    assert!(
        server.client_final(data).is_err(),
        "server must reject the proof"
    );
    let fake = server.server_final_unchecked(data);
    p.receive(&t::sasl_final(fake.as_bytes()));
    let e = p.next_event().unwrap_err();
    assert!(matches!(e, Error::Auth(_)), "{e}");
}

#[test]
fn scram_plus_with_channel_binding() {
    let cb = vec![0xAB; 32];
    let mut c = config("scram_user", Some("pencil"));
    c.tls = true;
    c.tls_server_end_point = Some(cb.clone());
    let mut p = Protocol::new(c).unwrap();
    p.take_output();
    p.receive(&t::auth_sasl(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]));
    drain(&mut p).unwrap();
    let msgs = t::parse_frontend(&p.take_output());
    let FrontendMsg::SaslInitial { mechanism, data } = &msgs[0] else {
        panic!()
    };
    assert_eq!(mechanism, "SCRAM-SHA-256-PLUS");
    assert!(data.starts_with(b"p=tls-server-end-point,,n=,r="));
    let mut server = ScramServer::new("pencil", Some(cb));
    let first = server.client_first(data).unwrap();
    p.receive(&t::sasl_continue(first.as_bytes()));
    drain(&mut p).unwrap();
    let msgs = t::parse_frontend(&p.take_output());
    let FrontendMsg::SaslResponse(data) = &msgs[0] else {
        panic!()
    };
    // The server checks the binding data in c=.
    let fin = server.client_final(data).unwrap();
    p.receive(&t::sasl_final(fin.as_bytes()));
    p.receive(&t::auth_ok());
    startup_done(&mut p);
    assert!(p.channel_binding_used());
}

#[test]
fn scram_over_tls_without_plus_says_y() {
    let mut c = config("scram_user", Some("pencil"));
    c.tls = true;
    c.tls_server_end_point = Some(vec![1; 32]);
    let mut p = Protocol::new(c).unwrap();
    p.receive(&t::auth_sasl(&["SCRAM-SHA-256"]));
    p.take_output();
    drain(&mut p).unwrap();
    let msgs = t::parse_frontend(&p.take_output());
    let FrontendMsg::SaslInitial { data, .. } = &msgs[0] else {
        panic!()
    };
    assert!(data.starts_with(b"y,,n=,r="));
}

#[test]
fn channel_binding_disable_and_require() {
    // disable: plain SCRAM with 'n' even though PLUS is offered over TLS.
    let mut c = config("u", Some("pw"));
    c.tls = true;
    c.tls_server_end_point = Some(vec![1; 32]);
    c.channel_binding = ChannelBindingMode::Disable;
    let mut p = Protocol::new(c.clone()).unwrap();
    p.take_output();
    p.receive(&t::auth_sasl(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]));
    drain(&mut p).unwrap();
    let msgs = t::parse_frontend(&p.take_output());
    assert!(
        matches!(&msgs[0], FrontendMsg::SaslInitial { mechanism, data }
        if mechanism == "SCRAM-SHA-256" && data.starts_with(b"n,,"))
    );

    // require: refuse password methods, refuse plain SCRAM, refuse trust.
    c.channel_binding = ChannelBindingMode::Require;
    for req in [
        t::auth_cleartext(),
        t::auth_md5([0; 4]),
        t::auth_sasl(&["SCRAM-SHA-256"]),
        t::auth_ok(),
    ] {
        let mut p = Protocol::new(c.clone()).unwrap();
        p.receive(&req);
        assert!(matches!(p.next_event(), Err(Error::Auth(_))));
    }
    // require without TLS: PLUS over plain text is refused.
    let mut c = config("u", Some("pw"));
    c.channel_binding = ChannelBindingMode::Require;
    let mut p = Protocol::new(c).unwrap();
    p.receive(&t::auth_sasl(&["SCRAM-SHA-256-PLUS"]));
    assert!(matches!(p.next_event(), Err(Error::Auth(_))));
}

#[test]
fn sasl_unsupported_and_out_of_order() {
    let mut p = Protocol::new(config("u", Some("pw"))).unwrap();
    p.receive(&t::auth_sasl(&["OAUTHBEARER"]));
    let e = p.next_event().unwrap_err();
    assert!(e.to_string().contains("none of the server's SASL"), "{e}");

    let mut p = Protocol::new(config("u", Some("pw"))).unwrap();
    p.receive(&t::sasl_final(b"v=xx"));
    assert!(p.next_event().is_err());

    // AuthenticationOk in the middle of SCRAM is refused.
    let mut p = Protocol::new(config("u", Some("pw"))).unwrap();
    p.receive(&t::auth_sasl(&["SCRAM-SHA-256"]));
    p.receive(&t::auth_ok());
    assert!(matches!(p.next_event(), Err(Error::Auth(_))));

    // GSS is not supported.
    let mut p = Protocol::new(config("u", Some("pw"))).unwrap();
    p.receive(&t::auth_request(7, &[]));
    assert!(matches!(p.next_event(), Err(Error::Auth(_))));
}

#[test]
fn simple_query_results() {
    let mut p = connected();
    p.send_query("IDENTIFY_SYSTEM").unwrap();
    assert_eq!(
        t::parse_frontend(&p.take_output()),
        vec![FrontendMsg::Query("IDENTIFY_SYSTEM".into())]
    );
    assert!(p.send_query("again").is_err(), "only one command at a time");
    p.receive(&t::row_description(&[
        ("systemid", 25),
        ("timeline", 23),
        ("xlogpos", 25),
        ("dbname", 25),
    ]));
    p.receive(&t::data_row(&[
        Some("7"),
        Some("1"),
        Some("0/16B3748"),
        None,
    ]));
    p.receive(&t::command_complete("IDENTIFY_SYSTEM"));
    p.receive(&t::ready());
    let ev = drain(&mut p).unwrap();
    let [Event::QueryResult(sets)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(sets.len(), 1);
    assert_eq!(
        sets[0].columns[1],
        Column {
            name: "timeline".into(),
            type_oid: 23
        }
    );
    assert_eq!(sets[0].rows[0].get_str(2).unwrap(), Some("0/16B3748"));
    assert_eq!(sets[0].rows[0].get(3), None);
    assert_eq!(sets[0].tag.as_deref(), Some("IDENTIFY_SYSTEM"));
    let id = crate::replication::IdentifySystem::from_results(sets).unwrap();
    assert_eq!(id.xlogpos, Lsn(0x16B_3748));
    assert!(p.is_idle());

    // A command without rows: just the tag. An empty query.
    p.send_query("DROP_REPLICATION_SLOT \"s\"").unwrap();
    p.receive(&t::command_complete("DROP_REPLICATION_SLOT"));
    p.receive(&t::ready());
    let ev = drain(&mut p).unwrap();
    assert_eq!(
        ev,
        vec![Event::QueryResult(vec![ResultSet {
            columns: vec![],
            rows: vec![],
            tag: Some("DROP_REPLICATION_SLOT".into())
        }])]
    );
    p.send_query("").unwrap();
    p.receive(&t::empty_query());
    p.receive(&t::ready());
    assert_eq!(
        drain(&mut p).unwrap(),
        vec![Event::QueryResult(vec![ResultSet::default()])]
    );
}

#[test]
fn query_error_then_usable() {
    let mut p = connected();
    p.send_query("DROP_REPLICATION_SLOT \"nope\"").unwrap();
    p.receive(&t::error(&[
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', "42704"),
        (b'M', "replication slot \"nope\" does not exist"),
    ]));
    let e = p.next_event().unwrap_err();
    assert_eq!(e.code(), Some("42704"));
    assert!(e.is_recoverable());
    assert!(!p.is_idle() && !p.is_closed());
    p.receive(&t::ready());
    assert_eq!(drain(&mut p).unwrap(), vec![]);
    assert!(p.is_idle());
    p.send_query("IDENTIFY_SYSTEM").unwrap();
}

#[test]
fn notices_and_parameter_changes() {
    let mut p = connected();
    p.send_query("SHOW x").unwrap();
    p.receive(&t::notice(&[
        (b'S', "WARNING"),
        (b'C', "01000"),
        (b'M', "careful"),
    ]));
    p.receive(&t::param_status("application_name", "new"));
    p.receive(&t::row_description(&[("x", 25)]));
    p.receive(&t::data_row(&[Some("1")]));
    p.receive(&t::command_complete("SHOW"));
    p.receive(&t::ready());
    let ev = drain(&mut p).unwrap();
    assert!(matches!(&ev[0], Event::Notice(n) if n.message == "careful"));
    assert!(matches!(&ev[1], Event::ParameterStatus { name, .. } if name == "application_name"));
    assert!(matches!(&ev[2], Event::QueryResult(_)));
    assert_eq!(p.parameter("application_name"), Some("new"));
}

fn streaming() -> Protocol {
    let mut p = connected();
    p.send_start_replication("START_REPLICATION PHYSICAL 0/3000000 TIMELINE 1")
        .unwrap();
    p.take_output();
    p.receive(&t::copy_both());
    assert_eq!(drain(&mut p).unwrap(), vec![Event::CopyBothStarted]);
    assert!(p.is_streaming() && p.can_send_feedback());
    p
}

#[test]
fn streaming_events_and_feedback() {
    let mut p = streaming();
    p.receive(&t::copy_data(&t::xlogdata(
        0x300_0000, 0x300_0100, 9, b"abcd",
    )));
    p.receive(&t::copy_data(&t::keepalive(0x300_0100, 10, true)));
    let ev = drain(&mut p).unwrap();
    let Event::XLogData(x) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(
        (x.start, x.end, &x.data[..]),
        (Lsn(0x300_0000), Lsn(0x300_0004), &b"abcd"[..])
    );
    assert_eq!(
        ev[1],
        Event::Keepalive(PrimaryKeepalive {
            wal_end: Lsn(0x300_0100),
            server_time: crate::replication::PgTimestamp(10),
            reply_requested: true
        })
    );
    let mut pos = FeedbackPositions::default();
    pos.set_write(x.end);
    pos.set_flush(Lsn(0x300_0000));
    let status = pos.status_update(crate::replication::PgTimestamp(11), false);
    p.send_standby_status(&status).unwrap();
    p.send_hot_standby_feedback(&HotStandbyFeedback {
        client_time: crate::replication::PgTimestamp(12),
        xmin: 5,
        ..HotStandbyFeedback::default()
    })
    .unwrap();
    let msgs = t::parse_frontend(&p.take_output());
    assert_eq!(msgs.len(), 2);
    let FrontendMsg::CopyData(d) = &msgs[0] else {
        panic!()
    };
    assert_eq!(d.len(), 34);
    assert_eq!(StandbyStatusUpdate::parse(d).unwrap(), status);
    let FrontendMsg::CopyData(h) = &msgs[1] else {
        panic!()
    };
    assert_eq!(HotStandbyFeedback::parse(h).unwrap().xmin, 5);
}

#[test]
fn timeline_end() {
    let mut p = streaming();
    p.receive(&t::copy_data(&t::xlogdata(0x300_0000, 0x300_0000, 0, b"x")));
    // End of the historic timeline: CopyDone, next-TLI row, CommandComplete(s), ReadyForQuery.
    p.receive(&t::copy_done());
    let ev = drain(&mut p).unwrap();
    assert_eq!(ev.len(), 1);
    // The client answered with its own CopyDone.
    assert_eq!(
        t::parse_frontend(&p.take_output()),
        vec![FrontendMsg::CopyDone]
    );
    assert!(!p.can_send_feedback());
    assert!(p
        .send_standby_status(
            &FeedbackPositions::default().status_update(crate::replication::PgTimestamp(0), false)
        )
        .is_err());
    p.receive(&t::row_description(&[
        ("next_tli", 20),
        ("next_tli_startpos", 25),
    ]));
    p.receive(&t::data_row(&[Some("2"), Some("0/3000A8")]));
    p.receive(&t::command_complete("SELECT"));
    p.receive(&t::command_complete("START_STREAMING"));
    p.receive(&t::ready());
    assert_eq!(
        drain(&mut p).unwrap(),
        vec![Event::TimelineEnded {
            next_tli: TimelineId(2),
            next_start: Lsn(0x30_00A8)
        }]
    );
    assert!(p.is_idle());
    // The same connection continues on the next timeline.
    p.send_start_replication("START_REPLICATION PHYSICAL 0/3000000 TIMELINE 2")
        .unwrap();
}

#[test]
fn client_stop() {
    let mut p = streaming();
    p.send_copy_done().unwrap();
    assert_eq!(
        t::parse_frontend(&p.take_output()),
        vec![FrontendMsg::CopyDone]
    );
    assert!(p.send_copy_done().is_err());
    // Data in flight still arrives.
    p.receive(&t::copy_data(&t::xlogdata(0x10, 0x10, 0, b"late")));
    p.receive(&t::copy_done());
    p.receive(&t::command_complete("START_STREAMING"));
    p.receive(&t::ready());
    let ev = drain(&mut p).unwrap();
    assert!(matches!(ev[0], Event::XLogData(_)));
    assert_eq!(ev[1], Event::StreamEnded);
    // No second CopyDone was sent in answer to the server's.
    assert!(!p.has_output());
    assert!(p.is_idle());
}

#[test]
fn start_at_end_of_historic_timeline_skips_copy() {
    let mut p = connected();
    p.send_start_replication("START_REPLICATION PHYSICAL 0/3000000 TIMELINE 1")
        .unwrap();
    p.receive(&t::row_description(&[
        ("next_tli", 20),
        ("next_tli_startpos", 25),
    ]));
    p.receive(&t::data_row(&[Some("2"), Some("0/3000000")]));
    p.receive(&t::command_complete("SELECT"));
    p.receive(&t::ready());
    assert_eq!(
        drain(&mut p).unwrap(),
        vec![Event::TimelineEnded {
            next_tli: TimelineId(2),
            next_start: Lsn(0x300_0000)
        }]
    );
}

#[test]
fn start_replication_error() {
    let mut p = connected();
    p.send_start_replication("START_REPLICATION PHYSICAL 9/0")
        .unwrap();
    p.receive(&t::error(&[
        (b'S', "ERROR"),
        (b'C', "58P01"),
        (b'M', "requested starting point 9/0 is ahead of the WAL flush position of this server 0/3000000"),
    ]));
    p.receive(&t::ready());
    let e = p.next_event().unwrap_err();
    assert_eq!(e.code(), Some("58P01"));
    assert_eq!(drain(&mut p).unwrap(), vec![]);
    assert!(p.is_idle());
}

#[test]
fn error_mid_stream() {
    let mut p = streaming();
    p.receive(&t::copy_data(&t::xlogdata(0, 0, 0, b"a")));
    p.receive(&t::error(&[
        (b'S', "ERROR"),
        (b'C', "58P01"),
        (
            b'M',
            "requested WAL segment 000000010000000000000003 has already been removed",
        ),
    ]));
    p.receive(&t::ready());
    assert!(matches!(p.next_event(), Ok(Some(Event::XLogData(_)))));
    let e = p.next_event().unwrap_err();
    assert!(e.to_string().contains("has already been removed"));
    assert_eq!(drain(&mut p).unwrap(), vec![]);
    assert!(p.is_idle());

    // A FATAL (e.g. administrator shutdown) closes the connection.
    let mut p = streaming();
    p.receive(&t::error(&[
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "57P01"),
        (b'M', "terminating connection due to administrator command"),
    ]));
    assert_eq!(p.next_event().unwrap_err().code(), Some("57P01"));
    assert!(p.is_closed());
}

#[test]
fn protocol_violations_close() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "copy data when idle",
            t::copy_data(&t::keepalive(0, 0, false)),
        ),
        ("bad streaming header", {
            let mut p = t::copy_data(b"z");
            p.truncate(p.len());
            p
        }),
        ("short keepalive", t::copy_data(b"k\0\0")),
        ("length < 4", vec![b'Z', 0, 0, 0, 3]),
        ("huge length", vec![b'd', 0x7F, 0xFF, 0xFF, 0xFF]),
        ("unknown tag", vec![b'!', 0, 0, 0, 4]),
    ];
    for (name, bytes) in cases {
        let mut p = if name == "copy data when idle" {
            connected()
        } else {
            streaming()
        };
        p.receive(&bytes);
        assert!(p.next_event().is_err(), "{name}");
        assert!(p.is_closed(), "{name}");
    }
}

#[test]
fn byte_at_a_time() {
    // Messages split at every byte boundary are reassembled.
    let mut p = streaming();
    let mut all = Vec::new();
    all.extend(t::copy_data(&t::xlogdata(0x100, 0x200, 1, &[7; 300])));
    all.extend(t::copy_data(&t::keepalive(0x200, 2, false)));
    let mut events = Vec::new();
    for b in all {
        p.receive(&[b]);
        events.extend(drain(&mut p).unwrap());
    }
    assert_eq!(events.len(), 2);
    assert!(matches!(&events[0], Event::XLogData(x) if x.data.len() == 300));
}

#[test]
fn terminate() {
    let mut p = connected();
    p.send_terminate();
    assert_eq!(
        t::parse_frontend(&p.take_output()),
        vec![FrontendMsg::Terminate]
    );
    assert!(p.is_closed());
    assert!(matches!(p.send_query("x"), Err(Error::Closed)));
    assert!(matches!(p.connection_lost(), Error::Closed));
}

#[test]
fn feedback_positions_are_monotonic() {
    let mut f = FeedbackPositions::default();
    f.set_write(Lsn(10));
    f.set_flush(Lsn(8));
    f.set_apply(Lsn(5));
    f.set_write(Lsn(9));
    f.set_flush(Lsn(1));
    f.set_apply(Lsn(0));
    assert_eq!((f.write(), f.flush(), f.apply()), (Lsn(10), Lsn(8), Lsn(5)));
    let s = f.status_update(crate::replication::PgTimestamp(3), true);
    assert!(s.reply_requested);
    assert_eq!(s.write, Lsn(10));
}

/// A message header claiming `len` bytes (tag and length only).
fn header(tag: u8, len: u32) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&len.to_be_bytes());
    m
}

#[test]
fn oversized_messages_are_refused_before_their_bytes() {
    // Beyond 1 GB + 1 MB in any state: refused from the header alone.
    let mut p = connected();
    p.send_query("IDENTIFY_SYSTEM").unwrap();
    p.receive(&header(b'D', 0x7FFF_FFFF));
    let e = drain(&mut p).unwrap_err();
    assert!(
        e.to_string().contains("is too long (2147483647 bytes)"),
        "{e}"
    );
    assert!(p.is_closed());
    // The largest allowed message is not reserved in one go: the buffer grows as bytes come.
    let mut p = connected();
    p.send_query("IDENTIFY_SYSTEM").unwrap();
    p.receive(&header(b'D', MAX_MESSAGE_LEN as u32));
    p.receive(&[0u8; 1000]);
    assert!(drain(&mut p).unwrap().is_empty());
    assert!(p.receive_buffer().capacity() < 4 << 20);
    // While streaming, a CopyData larger than a walsender ever sends (16 pages of 64 kB).
    let mut p = streaming();
    let most = (4 + 25 + MAX_XLOGDATA_WAL) as u32;
    p.receive(&header(b'd', most + 1));
    let e = drain(&mut p).unwrap_err();
    assert!(e.to_string().contains("while streaming"), "{e}");
    // ...but exactly that much is accepted.
    let mut p = streaming();
    let mut m = header(b'd', most);
    m.push(b'w');
    m.extend_from_slice(&0x100_0000u64.to_be_bytes());
    m.extend_from_slice(&0x200_0000u64.to_be_bytes());
    m.extend_from_slice(&0i64.to_be_bytes());
    m.extend(std::iter::repeat_n(7u8, MAX_XLOGDATA_WAL));
    p.receive(&m);
    match drain(&mut p).unwrap().as_slice() {
        [Event::XLogData(x)] => assert_eq!(x.data.len(), MAX_XLOGDATA_WAL),
        other => panic!("{other:?}"),
    }
}

#[test]
fn result_sets_and_parameters_are_bounded() {
    let mut p = connected();
    p.send_query("SELECT").unwrap();
    p.receive(&t::row_description(&[("x", 25)]));
    let row = t::data_row(&[Some("1")]);
    let rows: Vec<u8> = row.iter().copied().cycle().take(row.len() * 1000).collect();
    let mut n = 0;
    let e = loop {
        p.receive(&rows);
        n += 1000;
        match drain(&mut p) {
            Ok(ev) => assert!(ev.is_empty()),
            Err(e) => break e,
        }
        assert!(n <= MAX_RESULT_ROWS + 1000, "{n} rows accepted");
    };
    assert_eq!(n, MAX_RESULT_ROWS + 1000);
    assert!(e.to_string().contains("more than 100000 rows"), "{e}");
    assert!(p.is_closed());
    // Exactly the bound is fine, and the count starts again with the next command.
    let mut p = connected();
    for _ in 0..2 {
        p.send_query("SELECT").unwrap();
        p.receive(&t::row_description(&[("x", 25)]));
        for _ in 0..MAX_RESULT_ROWS / 1000 {
            p.receive(&rows);
        }
        p.receive(&t::command_complete("SELECT"));
        p.receive(&t::ready());
        match drain(&mut p).unwrap().as_slice() {
            [Event::QueryResult(sets)] => assert_eq!(sets[0].rows.len(), MAX_RESULT_ROWS),
            other => panic!("{other:?}"),
        }
    }
    // Parameters: a server reports about 20; the 1001st distinct name ends the connection.
    let mut p = connected();
    let known = p.parameters().len();
    for i in known..MAX_PARAMETERS {
        p.receive(&t::param_status(&format!("p{i}"), "v"));
    }
    p.receive(&t::param_status("server_version", "16.5"));
    assert_eq!(drain(&mut p).unwrap().len(), MAX_PARAMETERS - known + 1);
    p.receive(&t::param_status("one_too_many", "v"));
    let e = drain(&mut p).unwrap_err();
    assert!(e.to_string().contains("more than 1000 parameters"), "{e}");
}

// ---- protocol version negotiation (3.2, libpq 18's min/max_protocol_version) ----

fn negotiate(version: u32, options: &[&str]) -> Vec<u8> {
    let mut b = version.to_be_bytes().to_vec();
    b.extend_from_slice(&(options.len() as i32).to_be_bytes());
    for o in options {
        b.extend_from_slice(o.as_bytes());
        b.push(0);
    }
    t::message(b'v', &b)
}

fn key_data(pid: i32, key: &[u8]) -> Vec<u8> {
    let mut b = pid.to_be_bytes().to_vec();
    b.extend_from_slice(key);
    t::message(b'K', &b)
}

fn asking(max: ProtocolVersion, min: ProtocolVersion) -> Protocol {
    let mut c = StartupConfig::new("rep");
    c.max_protocol_version = max;
    c.min_protocol_version = min;
    let mut p = Protocol::new(c).unwrap();
    let out = p.take_output();
    assert_eq!(out[4..8], max.code().to_be_bytes());
    p
}

#[test]
fn protocol_3_2_with_a_long_cancel_key() {
    let mut p = asking(ProtocolVersion::V3_2, ProtocolVersion::V3_0);
    p.receive(&t::auth_ok());
    p.receive(&key_data(7, &[0xAB; 32]));
    p.receive(&t::ready());
    assert_eq!(drain(&mut p).unwrap().last(), Some(&Event::Connected));
    assert_eq!(p.protocol_version(), ProtocolVersion::V3_2);
    assert_eq!(p.backend_key(), Some((7, &[0xAB; 32][..])));
}

#[test]
fn an_older_server_negotiates_down_to_3_0() {
    let mut p = asking(ProtocolVersion::V3_2, ProtocolVersion::V3_0);
    p.receive(&negotiate(ProtocolVersion::V3_0.code(), &[]));
    p.receive(&t::auth_ok());
    startup_done(&mut p);
    assert_eq!(p.protocol_version(), ProtocolVersion::V3_0);
    assert_eq!(p.backend_key(), Some((4242, &77i32.to_be_bytes()[..])));
}

#[test]
fn min_protocol_version_above_the_servers_fails() {
    let mut p = asking(ProtocolVersion::V3_2, ProtocolVersion::V3_2);
    p.receive(&negotiate(ProtocolVersion::V3_0.code(), &[]));
    let e = drain(&mut p).unwrap_err();
    assert!(matches!(e, Error::ProtocolVersion { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "server only supports protocol version 3.0, but \"min_protocol_version\" was set to 3.2"
    );
}

#[test]
fn invalid_negotiation_is_refused_as_libpq_does() {
    let cases: [(ProtocolVersion, Vec<u8>, &str); 6] = [
        (
            ProtocolVersion::V3_0,
            negotiate(ProtocolVersion::V3_2.code(), &[]),
            "server requested downgrade to a higher-numbered version",
        ),
        (
            ProtocolVersion::V3_2,
            negotiate(2 << 16, &[]),
            "server requested downgrade to pre-3.0 protocol version",
        ),
        (
            ProtocolVersion::V3_2,
            negotiate(3 << 16 | 1, &[]),
            "server requested downgrade to non-existent 3.1 protocol version",
        ),
        (
            ProtocolVersion::V3_2,
            negotiate(ProtocolVersion::V3_2.code(), &[]),
            "server negotiated but asks for no changes",
        ),
        (
            ProtocolVersion::V3_2,
            negotiate(ProtocolVersion::V3_0.code(), &["_pq_.x"]),
            "server reported an unsupported parameter that was not requested (\"_pq_.x\")",
        ),
        (
            ProtocolVersion::V3_2,
            t::message(b'v', &[0, 3, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]),
            "server reported negative number of unsupported parameters",
        ),
    ];
    for (max, msg, why) in cases {
        let mut p = asking(max, ProtocolVersion::V3_0);
        p.receive(&msg);
        let e = drain(&mut p).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("protocol error: received invalid protocol negotiation message: {why}")
        );
    }
    // Truncated, and after authentication.
    let mut p = asking(ProtocolVersion::V3_2, ProtocolVersion::V3_0);
    p.receive(&t::message(b'v', &[0, 3, 0, 0, 0, 0, 0, 1, b'x']));
    assert!(drain(&mut p).is_err());
    let mut p = asking(ProtocolVersion::V3_2, ProtocolVersion::V3_0);
    p.receive(&t::auth_ok());
    p.receive(&negotiate(ProtocolVersion::V3_0.code(), &[]));
    assert!(drain(&mut p).is_err());
}

#[test]
fn cancel_key_length_is_checked_for_the_version_in_use() {
    let cases: [(ProtocolVersion, usize, Option<&str>); 5] = [
        (ProtocolVersion::V3_0, 4, None),
        (
            ProtocolVersion::V3_0,
            32,
            Some("cancel key with length 32 not allowed in protocol version 3.0 (must be 4 bytes)"),
        ),
        (ProtocolVersion::V3_2, 256, None),
        (
            ProtocolVersion::V3_2,
            257,
            Some("cancel key with length 257 is too long (maximum 256 bytes)"),
        ),
        (
            ProtocolVersion::V3_2,
            3,
            Some("cancel key with length 3 is too short (minimum 4 bytes)"),
        ),
    ];
    for (max, len, err) in cases {
        let mut p = asking(max, ProtocolVersion::V3_0);
        p.receive(&t::auth_ok());
        p.receive(&key_data(1, &vec![9; len]));
        p.receive(&t::ready());
        match (drain(&mut p), err) {
            (Ok(ev), None) => {
                assert_eq!(ev.last(), Some(&Event::Connected));
                assert_eq!(p.backend_key().unwrap().1.len(), len);
            }
            (Err(e), Some(why)) => assert_eq!(
                e.to_string(),
                format!("protocol error: received invalid BackendKeyData message: {why}")
            ),
            (r, _) => panic!("{max} {len}: {r:?}"),
        }
    }
}
