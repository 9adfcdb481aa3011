//! The messages carried inside `CopyData` during physical streaming replication.
//!
//! Server to client: [`XLogData`] (`'w'`) and [`PrimaryKeepalive`] (`'k'`). Client to server:
//! [`StandbyStatusUpdate`] (`'r'`) and [`HotStandbyFeedback`] (`'h'`). All integers are
//! big-endian; times are [`PgTimestamp`]s.
//!
//! ```text
//! XLogData (B):          'w' | Int64 dataStart | Int64 walEnd | Int64 sendTime | bytes...  (25-byte header)
//! Primary keepalive (B): 'k' | Int64 walEnd | Int64 sendTime | Byte1 replyRequested       (18 bytes)
//! Standby status (F):    'r' | Int64 write | Int64 flush | Int64 apply | Int64 sendTime | Byte1 reply  (34 bytes)
//! HS feedback (F):       'h' | Int64 sendTime | Int32 xmin | Int32 epoch | Int32 catalog_xmin | Int32 epoch  (25 bytes)
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use super::Error;
use crate::Lsn;

/// Seconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01 00:00:00 UTC.
const PG_EPOCH_UNIX_SECS: u64 = 946_684_800;

/// A PostgreSQL timestamp on the wire: microseconds since 2000-01-01 00:00:00 UTC
/// (`TimestampTz`).
///
/// ```
/// use pgwal::replication::PgTimestamp;
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = PgTimestamp::from_system_time(UNIX_EPOCH + Duration::from_secs(946_684_801));
/// assert_eq!(t, PgTimestamp(1_000_000));
/// assert_eq!(t.to_system_time(), Some(UNIX_EPOCH + Duration::from_secs(946_684_801)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PgTimestamp(pub i64);

impl PgTimestamp {
    /// The current time (`feGetCurrentTimestamp()`).
    pub fn now() -> PgTimestamp {
        PgTimestamp::from_system_time(SystemTime::now())
    }

    /// Converts a system time; times beyond the `i64` range saturate.
    pub fn from_system_time(t: SystemTime) -> PgTimestamp {
        let epoch = UNIX_EPOCH + Duration::from_secs(PG_EPOCH_UNIX_SECS);
        match t.duration_since(epoch) {
            Ok(d) => PgTimestamp(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            Err(e) => PgTimestamp(
                i64::try_from(e.duration().as_micros())
                    .map(|v| -v)
                    .unwrap_or(i64::MIN),
            ),
        }
    }

    /// Converts to a system time, or `None` if out of range.
    pub fn to_system_time(self) -> Option<SystemTime> {
        let epoch = UNIX_EPOCH + Duration::from_secs(PG_EPOCH_UNIX_SECS);
        if self.0 >= 0 {
            epoch.checked_add(Duration::from_micros(self.0.unsigned_abs()))
        } else {
            epoch.checked_sub(Duration::from_micros(self.0.unsigned_abs()))
        }
    }
}

impl fmt::Display for PgTimestamp {
    /// Microseconds since 2000-01-01, e.g. `812345678901234µs`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}µs", self.0)
    }
}

/// A chunk of WAL (`'w'`). The bytes are shared with the receive buffer (no copy).
///
/// ```
/// use pgwal::replication::{ServerMessage, XLogData};
/// use pgwal::Lsn;
/// use bytes::Bytes;
/// let mut frame = vec![b'w'];
/// frame.extend_from_slice(&0x1000u64.to_be_bytes()); // dataStart
/// frame.extend_from_slice(&0x2000u64.to_be_bytes()); // walEnd
/// frame.extend_from_slice(&7i64.to_be_bytes());      // sendTime
/// frame.extend_from_slice(b"WAL!");
/// match ServerMessage::parse(Bytes::from(frame)).unwrap() {
///     ServerMessage::XLogData(x) => {
///         assert_eq!(x.start, Lsn(0x1000));
///         assert_eq!(x.end, Lsn(0x1004));
///         assert_eq!(x.wal_end, Lsn(0x2000));
///         assert_eq!(&x.data[..], b"WAL!");
///     }
///     _ => unreachable!(),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XLogData {
    /// The LSN of the first byte of `data` (`dataStart`).
    pub start: Lsn,
    /// The LSN just past the last byte of `data`: `start + data.len()`.
    pub end: Lsn,
    /// The server's current end of WAL (`walEnd`).
    pub wal_end: Lsn,
    /// When the server sent the message.
    pub server_time: PgTimestamp,
    /// The WAL bytes.
    pub data: Bytes,
}

/// A keepalive from the server (`'k'`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrimaryKeepalive {
    /// The server's current end of WAL.
    pub wal_end: Lsn,
    /// When the server sent the message.
    pub server_time: PgTimestamp,
    /// The server asks for a status update at once (it is waiting for one, e.g. to finish
    /// a shutdown or before `wal_sender_timeout` expires).
    pub reply_requested: bool,
}

/// A `CopyData` payload sent by a walsender during physical replication.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerMessage {
    /// `'w'`
    XLogData(XLogData),
    /// `'k'`
    Keepalive(PrimaryKeepalive),
}

/// The `'w'` header length.
const XLOGDATA_HEADER: usize = 25;
/// The `'k'` message length.
const KEEPALIVE_LEN: usize = 18;
/// The `'r'` message length.
pub(crate) const STATUS_LEN: usize = 34;
/// The `'h'` message length.
const HS_FEEDBACK_LEN: usize = 25;

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Some(u32::from_be_bytes(a))
}

impl ServerMessage {
    /// Parses a `CopyData` payload from the server. The XLogData payload is a slice of
    /// `payload` (no copy).
    pub fn parse(payload: Bytes) -> Result<ServerMessage, Error> {
        match payload.first() {
            Some(b'w') => {
                if payload.len() < XLOGDATA_HEADER {
                    return Err(Error::protocol(format!(
                        "streaming header too small: {}",
                        payload.len()
                    )));
                }
                let start = be_u64(&payload, 1).unwrap_or_default();
                let wal_end = be_u64(&payload, 9).unwrap_or_default();
                let time = be_u64(&payload, 17).unwrap_or_default() as i64;
                let data = payload.slice(XLOGDATA_HEADER..);
                let end = start.checked_add(data.len() as u64).ok_or_else(|| {
                    Error::protocol(format!(
                        "WAL data at {} of {} bytes overflows the LSN range",
                        Lsn(start),
                        data.len()
                    ))
                })?;
                Ok(ServerMessage::XLogData(XLogData {
                    start: Lsn(start),
                    end: Lsn(end),
                    wal_end: Lsn(wal_end),
                    server_time: PgTimestamp(time),
                    data,
                }))
            }
            Some(b'k') => {
                if payload.len() < KEEPALIVE_LEN {
                    return Err(Error::protocol(format!(
                        "streaming header too small: {}",
                        payload.len()
                    )));
                }
                Ok(ServerMessage::Keepalive(PrimaryKeepalive {
                    wal_end: Lsn(be_u64(&payload, 1).unwrap_or_default()),
                    server_time: PgTimestamp(be_u64(&payload, 9).unwrap_or_default() as i64),
                    reply_requested: payload.get(17).copied().unwrap_or(0) != 0,
                }))
            }
            Some(&t) => Err(Error::protocol(format!(
                "unrecognized streaming header: \"{}\"",
                t.escape_ascii()
            ))),
            None => Err(Error::protocol("empty CopyData message")),
        }
    }

    /// Encodes the payload as the server sends it (for tests and round-trip checks).
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            ServerMessage::XLogData(x) => {
                out.reserve(XLOGDATA_HEADER + x.data.len());
                out.put_u8(b'w');
                out.put_u64(x.start.0);
                out.put_u64(x.wal_end.0);
                out.put_i64(x.server_time.0);
                out.put_slice(&x.data);
            }
            ServerMessage::Keepalive(k) => {
                out.put_u8(b'k');
                out.put_u64(k.wal_end.0);
                out.put_i64(k.server_time.0);
                out.put_u8(u8::from(k.reply_requested));
            }
        }
    }
}

/// A standby status update (`'r'`): how far the client has written, flushed and applied WAL.
///
/// ```
/// use pgwal::replication::{PgTimestamp, StandbyStatusUpdate};
/// use pgwal::Lsn;
/// let s = StandbyStatusUpdate {
///     write: Lsn(0x3000),
///     flush: Lsn(0x2000),
///     apply: Lsn::INVALID,
///     client_time: PgTimestamp(1),
///     reply_requested: false,
/// };
/// let bytes = s.encode();
/// assert_eq!(bytes.len(), 34);
/// assert_eq!(bytes[0], b'r');
/// assert_eq!(StandbyStatusUpdate::parse(&bytes).unwrap(), s);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StandbyStatusUpdate {
    /// The position after the last byte received and written.
    pub write: Lsn,
    /// The position after the last byte flushed to durable storage; a physical slot's
    /// `restart_lsn` follows this. [`Lsn::INVALID`] means "not reported".
    pub flush: Lsn,
    /// The position after the last byte applied ([`Lsn::INVALID`] if not applicable).
    pub apply: Lsn,
    /// The client's clock when sending.
    pub client_time: PgTimestamp,
    /// Ask the server to answer at once with a keepalive.
    pub reply_requested: bool,
}

impl StandbyStatusUpdate {
    /// The 34-byte payload.
    pub fn encode(&self) -> [u8; STATUS_LEN] {
        let mut b = [0u8; STATUS_LEN];
        b[0] = b'r';
        b[1..9].copy_from_slice(&self.write.0.to_be_bytes());
        b[9..17].copy_from_slice(&self.flush.0.to_be_bytes());
        b[17..25].copy_from_slice(&self.apply.0.to_be_bytes());
        b[25..33].copy_from_slice(&self.client_time.0.to_be_bytes());
        b[33] = u8::from(self.reply_requested);
        b
    }

    /// Parses a payload (as a server would).
    pub fn parse(b: &[u8]) -> Result<StandbyStatusUpdate, Error> {
        if b.first() != Some(&b'r') || b.len() != STATUS_LEN {
            return Err(Error::protocol("invalid standby status update"));
        }
        Ok(StandbyStatusUpdate {
            write: Lsn(be_u64(b, 1).unwrap_or_default()),
            flush: Lsn(be_u64(b, 9).unwrap_or_default()),
            apply: Lsn(be_u64(b, 17).unwrap_or_default()),
            client_time: PgTimestamp(be_u64(b, 25).unwrap_or_default() as i64),
            reply_requested: b[33] != 0,
        })
    }
}

/// Hot-standby feedback (`'h'`): the oldest transaction ids the standby still needs, so the
/// primary keeps the rows they can see. Zero xmins mean "no constraint".
///
/// ```
/// use pgwal::replication::{HotStandbyFeedback, PgTimestamp};
/// let h = HotStandbyFeedback { client_time: PgTimestamp(5), xmin: 700, xmin_epoch: 0,
///                              catalog_xmin: 0, catalog_xmin_epoch: 0 };
/// let b = h.encode();
/// assert_eq!(b.len(), 25);
/// assert_eq!(HotStandbyFeedback::parse(&b).unwrap(), h);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HotStandbyFeedback {
    /// The client's clock when sending.
    pub client_time: PgTimestamp,
    /// The standby's oldest `xmin` (0 = none).
    pub xmin: u32,
    /// The epoch of `xmin`.
    pub xmin_epoch: u32,
    /// The oldest `catalog_xmin` of the standby's replication slots (0 = none).
    pub catalog_xmin: u32,
    /// The epoch of `catalog_xmin`.
    pub catalog_xmin_epoch: u32,
}

impl HotStandbyFeedback {
    /// The 25-byte payload.
    pub fn encode(&self) -> [u8; HS_FEEDBACK_LEN] {
        let mut b = [0u8; HS_FEEDBACK_LEN];
        b[0] = b'h';
        b[1..9].copy_from_slice(&self.client_time.0.to_be_bytes());
        b[9..13].copy_from_slice(&self.xmin.to_be_bytes());
        b[13..17].copy_from_slice(&self.xmin_epoch.to_be_bytes());
        b[17..21].copy_from_slice(&self.catalog_xmin.to_be_bytes());
        b[21..25].copy_from_slice(&self.catalog_xmin_epoch.to_be_bytes());
        b
    }

    /// Parses a payload (as a server would).
    pub fn parse(b: &[u8]) -> Result<HotStandbyFeedback, Error> {
        if b.first() != Some(&b'h') || b.len() != HS_FEEDBACK_LEN {
            return Err(Error::protocol("invalid hot standby feedback message"));
        }
        Ok(HotStandbyFeedback {
            client_time: PgTimestamp(be_u64(b, 1).unwrap_or_default() as i64),
            xmin: be_u32(b, 9).unwrap_or_default(),
            xmin_epoch: be_u32(b, 13).unwrap_or_default(),
            catalog_xmin: be_u32(b, 17).unwrap_or_default(),
            catalog_xmin_epoch: be_u32(b, 21).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xlogdata_bytes() {
        #[rustfmt::skip]
        let frame: &[u8] = &[
            b'w',
            0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, // dataStart 1/2000000
            0x00, 0x00, 0x00, 0x01, 0x03, 0x00, 0x00, 0x00, // walEnd    1/3000000
            0x00, 0x02, 0xE2, 0x8B, 0x0E, 0x3F, 0x2A, 0x01, // sendTime
            0xAA, 0xBB, 0xCC,                               // 3 bytes of WAL
        ];
        let payload = Bytes::copy_from_slice(frame);
        let ServerMessage::XLogData(x) = ServerMessage::parse(payload.clone()).unwrap() else {
            panic!("not XLogData");
        };
        assert_eq!(x.start, "1/2000000".parse().unwrap());
        assert_eq!(x.end, "1/2000003".parse().unwrap());
        assert_eq!(x.wal_end, "1/3000000".parse().unwrap());
        assert_eq!(x.server_time, PgTimestamp(0x0002_E28B_0E3F_2A01));
        assert_eq!(&x.data[..], &[0xAA, 0xBB, 0xCC]);
        // Zero-copy: the data points into the frame's buffer.
        assert_eq!(x.data.as_ptr(), payload[25..].as_ptr());
        let mut out = BytesMut::new();
        ServerMessage::XLogData(x).encode(&mut out);
        assert_eq!(&out[..], frame);
    }

    #[test]
    fn xlogdata_empty_and_short() {
        let mut f = vec![b'w'];
        f.extend_from_slice(&[0u8; 24]);
        let ServerMessage::XLogData(x) = ServerMessage::parse(Bytes::from(f.clone())).unwrap()
        else {
            panic!()
        };
        assert!(x.data.is_empty());
        assert_eq!(x.start, x.end);
        f.pop();
        assert_eq!(
            ServerMessage::parse(Bytes::from(f))
                .unwrap_err()
                .to_string(),
            "protocol error: streaming header too small: 24"
        );
    }

    #[test]
    fn xlogdata_lsn_overflow() {
        let mut f = vec![b'w'];
        f.extend_from_slice(&u64::MAX.to_be_bytes());
        f.extend_from_slice(&[0u8; 16]);
        f.push(1);
        assert!(ServerMessage::parse(Bytes::from(f)).is_err());
    }

    #[test]
    fn keepalive_bytes() {
        #[rustfmt::skip]
        let frame: &[u8] = &[
            b'k',
            0x00, 0x00, 0x00, 0x00, 0x01, 0x6B, 0x37, 0x48, // walEnd 0/16B3748
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2A, // sendTime 42
            0x01,                                           // reply requested
        ];
        let m = ServerMessage::parse(Bytes::copy_from_slice(frame)).unwrap();
        assert_eq!(
            m,
            ServerMessage::Keepalive(PrimaryKeepalive {
                wal_end: Lsn(0x16B_3748),
                server_time: PgTimestamp(42),
                reply_requested: true,
            })
        );
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert_eq!(&out[..], frame);
        assert!(ServerMessage::parse(Bytes::copy_from_slice(&frame[..17])).is_err());
        // Byte 17 = 0: no reply requested.
        let mut f = frame.to_vec();
        f[17] = 0;
        let ServerMessage::Keepalive(k) = ServerMessage::parse(Bytes::from(f)).unwrap() else {
            panic!()
        };
        assert!(!k.reply_requested);
    }

    #[test]
    fn unknown_and_empty() {
        assert_eq!(
            ServerMessage::parse(Bytes::from_static(b"x123"))
                .unwrap_err()
                .to_string(),
            "protocol error: unrecognized streaming header: \"x\""
        );
        assert!(ServerMessage::parse(Bytes::new()).is_err());
    }

    #[test]
    fn status_update_bytes() {
        let s = StandbyStatusUpdate {
            write: Lsn(0x0000_0001_0000_0010),
            flush: Lsn(0x20),
            apply: Lsn(0x30),
            client_time: PgTimestamp(-1),
            reply_requested: true,
        };
        #[rustfmt::skip]
        let expect: [u8; 34] = [
            b'r',
            0, 0, 0, 1, 0, 0, 0, 0x10,          // write
            0, 0, 0, 0, 0, 0, 0, 0x20,          // flush
            0, 0, 0, 0, 0, 0, 0, 0x30,          // apply
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, // sendTime -1
            1,                                  // reply
        ];
        assert_eq!(s.encode(), expect);
        assert_eq!(StandbyStatusUpdate::parse(&expect).unwrap(), s);
        assert!(StandbyStatusUpdate::parse(&expect[..33]).is_err());
    }

    #[test]
    fn hot_standby_feedback_bytes() {
        let h = HotStandbyFeedback {
            client_time: PgTimestamp(0x0102),
            xmin: 0x0A0B_0C0D,
            xmin_epoch: 1,
            catalog_xmin: 2,
            catalog_xmin_epoch: 3,
        };
        #[rustfmt::skip]
        let expect: [u8; 25] = [
            b'h',
            0, 0, 0, 0, 0, 0, 0x01, 0x02, // sendTime
            0x0A, 0x0B, 0x0C, 0x0D,       // xmin
            0, 0, 0, 1,                   // xmin epoch
            0, 0, 0, 2,                   // catalog_xmin
            0, 0, 0, 3,                   // catalog_xmin epoch
        ];
        assert_eq!(h.encode(), expect);
        assert_eq!(HotStandbyFeedback::parse(&expect).unwrap(), h);
    }

    #[test]
    fn timestamps() {
        let epoch = UNIX_EPOCH + Duration::from_secs(PG_EPOCH_UNIX_SECS);
        assert_eq!(PgTimestamp::from_system_time(epoch), PgTimestamp(0));
        assert_eq!(
            PgTimestamp::from_system_time(epoch - Duration::from_micros(5)),
            PgTimestamp(-5)
        );
        assert_eq!(
            PgTimestamp(-5).to_system_time(),
            Some(epoch - Duration::from_micros(5))
        );
        let now = PgTimestamp::now();
        // Some time after 2020.
        assert!(now.0 > 20 * 365 * 86_400 * 1_000_000);
    }
}
