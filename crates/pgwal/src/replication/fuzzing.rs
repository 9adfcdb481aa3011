//! Fuzzing harnesses. Not part of the stable interface.

use bytes::{Bytes, BytesMut};

use super::message::{HotStandbyFeedback, ServerMessage, StandbyStatusUpdate};
use super::protocol::{Event, FeedbackPositions, Protocol, StartupConfig};
use super::PgTimestamp;
use crate::conninfo::{ChannelBindingMode, ProtocolVersion};

/// Feeds arbitrary bytes as backend messages into the protocol core.
///
/// The first byte picks the starting state (bits 0–1: startup, idle, collecting a query
/// result, streaming), TLS and channel-binding settings (bits 2–5) and the chunk size the
/// rest is fed in (bits 6–7). Every event is checked: WAL payloads round-trip through
/// encode/parse, and output produced along the way is well-formed. Must never panic.
pub fn server_messages(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // The payload alone, as a CopyData body.
    check_copy_payload(rest);

    let mut cfg = StartupConfig::new("fuzz");
    cfg.password = Some(b"secret".to_vec());
    cfg.tls = mode & 0x04 != 0;
    if mode & 0x08 != 0 {
        cfg.tls_server_end_point = Some(vec![0x5A; 32]);
    }
    cfg.channel_binding = match (mode >> 4) & 0x03 {
        0 => ChannelBindingMode::Prefer,
        1 => ChannelBindingMode::Disable,
        _ => ChannelBindingMode::Require,
    };
    if mode & 0x40 != 0 {
        cfg.max_protocol_version = ProtocolVersion::V3_2;
        if mode & 0x80 != 0 {
            cfg.min_protocol_version = ProtocolVersion::V3_2;
        }
    }
    let Ok(mut p) = Protocol::new(cfg) else {
        return;
    };
    match mode & 0x03 {
        1 => p.force_state_for_testing("idle"),
        2 => p.force_state_for_testing("query"),
        3 => p.force_state_for_testing("streaming"),
        _ => {}
    }
    let chunk = match mode >> 6 {
        0 => rest.len().max(1),
        1 => 1,
        2 => 7,
        _ => 4096,
    };
    let mut positions = FeedbackPositions::default();
    for piece in rest.chunks(chunk) {
        p.receive(piece);
        loop {
            match p.next_event() {
                Ok(Some(ev)) => on_event(&mut p, &mut positions, ev),
                Ok(None) => break,
                Err(_) if p.is_closed() => return,
                Err(_) => continue,
            }
        }
        let out = p.take_output();
        assert!(out.len() < (1 << 20), "runaway output");
    }
    let _ = p.connection_lost();
}

fn on_event(p: &mut Protocol, positions: &mut FeedbackPositions, ev: Event) {
    match ev {
        Event::XLogData(x) => {
            assert_eq!(x.end.0 - x.start.0, x.data.len() as u64);
            let mut buf = BytesMut::new();
            ServerMessage::XLogData(x.clone()).encode(&mut buf);
            assert_eq!(
                ServerMessage::parse(buf.freeze()).ok(),
                Some(ServerMessage::XLogData(x.clone()))
            );
            positions.set_write(x.end);
            if p.can_send_feedback() {
                let s = positions.status_update(PgTimestamp(0), false);
                assert!(p.send_standby_status(&s).is_ok());
            }
        }
        Event::Keepalive(k) if k.reply_requested && p.can_send_feedback() => {
            let s = positions.status_update(PgTimestamp(1), false);
            assert!(p.send_standby_status(&s).is_ok());
            let h = HotStandbyFeedback::default();
            assert!(p.send_hot_standby_feedback(&h).is_ok());
        }
        Event::QueryResult(_)
        | Event::Connected
        | Event::TimelineEnded { .. }
        | Event::StreamEnded => {
            assert!(p.is_idle());
            // Start streaming again so later input is interpreted in that state too.
            let _ = p.send_start_replication("START_REPLICATION PHYSICAL 0/0");
        }
        Event::CopyBothStarted => assert!(p.is_streaming()),
        _ => {}
    }
}

/// Parses `payload` as a CopyData body in both directions and checks round trips.
fn check_copy_payload(payload: &[u8]) {
    if let Ok(m) = ServerMessage::parse(Bytes::copy_from_slice(payload)) {
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        assert_eq!(ServerMessage::parse(buf.freeze()).ok(), Some(m));
    }
    if let Ok(s) = StandbyStatusUpdate::parse(payload) {
        assert_eq!(StandbyStatusUpdate::parse(&s.encode()).ok(), Some(s));
    }
    if let Ok(h) = HotStandbyFeedback::parse(payload) {
        assert_eq!(&h.encode()[..], payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::testutil as t;

    #[test]
    fn harness_survives_samples() {
        server_messages(&[]);
        server_messages(&[0]);
        server_messages(&[3, b'd', 0, 0, 0, 4]);
        let mut stream = vec![3u8];
        stream.extend(t::copy_data(&t::xlogdata(1, 2, 3, b"abc")));
        stream.extend(t::copy_data(&t::keepalive(1, 2, true)));
        stream.extend(t::copy_done());
        stream.extend(t::row_description(&[
            ("next_tli", 20),
            ("next_tli_startpos", 25),
        ]));
        stream.extend(t::data_row(&[Some("2"), Some("0/10")]));
        stream.extend(t::command_complete("SELECT"));
        stream.extend(t::ready());
        stream.extend(t::copy_both());
        stream.extend(t::copy_data(&t::xlogdata(u64::MAX - 1, 0, 0, b"")));
        for m in [3u8, 0x43, 0x83, 0xC3] {
            stream[0] = m;
            server_messages(&stream);
        }
        let mut auth = vec![0x0C];
        auth.extend(t::auth_sasl(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]));
        auth.extend(t::sasl_continue(b"r=abc,s=QUJD,i=1"));
        server_messages(&auth);
        // Pseudo-random bytes.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..200 {
            let mut buf = Vec::new();
            for _ in 0..300 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                buf.push(x as u8);
            }
            server_messages(&buf);
        }
    }
}
