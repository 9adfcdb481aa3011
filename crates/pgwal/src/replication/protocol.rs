//! The replication protocol without I/O: bytes in, events and bytes out.
//!
//! A [`Protocol`] holds the state of one connection after the (optional) TLS negotiation:
//! the startup packet (protocol 3.0, or 3.2 when asked for, with libpq's negotiation down to
//! an older server's version), authentication (trust, cleartext, MD5, SCRAM-SHA-256 and
//! SCRAM-SHA-256-PLUS with `tls-server-end-point` channel binding), simple queries whose
//! results are collected into [`ResultSet`]s, and the CopyBoth phase of
//! `START_REPLICATION`. It never touches a socket or a clock: the caller feeds received bytes
//! with [`receive`](Protocol::receive), pulls [`Event`]s with
//! [`next_event`](Protocol::next_event), and writes [`pending_output`](Protocol::pending_output)
//! to the server.
//!
//! ```text
//!              receive(bytes)                         pending_output()
//!   server ───────────────────▶ ┌──────────────┐ ─────────────────────▶ server
//!                               │   Protocol   │
//!   caller ◀─── next_event() ── └──────────────┘ ◀── send_query(), send_standby_status(), ...
//! ```
//!
//! States: `Startup` (authenticating) → `Authenticated` → `Idle` ⇄ query / replication.
//! A replication command goes `Idle` → `StartReplication` → `Streaming` → (server CopyDone,
//! answered with a client CopyDone) → results → `Idle`, ending in [`Event::TimelineEnded`] if
//! the server sent the next timeline, else [`Event::StreamEnded`].
//!
//! ```
//! use pgwal::replication::protocol::{Event, Protocol, StartupConfig};
//!
//! let mut p = Protocol::new(StartupConfig::new("rep")).unwrap();
//! let startup = p.take_output(); // the StartupMessage, to write to the socket
//! assert_eq!(&startup[4..8], &[0, 3, 0, 0]); // protocol 3.0
//!
//! // The server answers: AuthenticationOk, ParameterStatus, ReadyForQuery.
//! p.receive(b"R\0\0\0\x08\0\0\0\0");
//! p.receive(b"S\0\0\0\x18server_version\x0016.4\0");
//! p.receive(b"Z\0\0\0\x05I");
//! let mut events = Vec::new();
//! while let Some(e) = p.next_event().unwrap() {
//!     events.push(e);
//! }
//! assert!(matches!(events.last(), Some(Event::Connected)));
//! assert_eq!(p.parameter("server_version"), Some("16.4"));
//! assert!(p.is_idle());
//! ```

use std::collections::BTreeMap;
use std::mem;

use bytes::{BufMut, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{
    ChannelBinding, ScramSha256, SCRAM_SHA_256, SCRAM_SHA_256_PLUS,
};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use super::command::{ServerVersion, TimelineSwitch};
use super::message::{HotStandbyFeedback, ServerMessage, StandbyStatusUpdate};
pub use super::result::{Column, ResultSet, Row};
use super::{DbError, Error, PrimaryKeepalive, XLogData};
use crate::conninfo::{AuthMethod, ChannelBindingMode, ProtocolVersion, RequireAuth};
use crate::{Lsn, TimelineId};

/// The largest backend message accepted, in bytes (PostgreSQL's `MaxAllocSize` is 1 GB;
/// a little slack for headers).
pub const MAX_MESSAGE_LEN: usize = (1 << 30) + (1 << 20);

/// The most WAL one `XLogData` message carries: a walsender sends at most 16 pages
/// (`MAX_SEND_SIZE`), and pages are at most 64 kB.
pub const MAX_XLOGDATA_WAL: usize = 16 * 65536;

/// The longest `CopyData` message accepted while streaming: an `XLogData` of
/// [`MAX_XLOGDATA_WAL`] bytes of WAL after its 25-byte header, the message's tag and length.
const MAX_STREAM_MESSAGE_LEN: usize = 4 + 25 + MAX_XLOGDATA_WAL;

/// The most rows a command's results may hold in all. Replication commands return one row;
/// this bounds what a hostile server can make the client keep (each row costs memory beyond
/// its bytes on the wire).
pub const MAX_RESULT_ROWS: usize = 100_000;

/// The most bytes of `DataRow` messages a command's results may hold in all (one row of the
/// largest message fits).
pub const MAX_RESULT_BYTES: usize = MAX_MESSAGE_LEN;

/// The most distinct run-time parameters (`ParameterStatus`) kept; a server reports about 20.
pub const MAX_PARAMETERS: usize = 1000;

/// The 8-byte `SSLRequest` packet, sent before the startup packet to ask for TLS.
pub fn ssl_request() -> [u8; 8] {
    let mut buf = BytesMut::with_capacity(8);
    frontend::ssl_request(&mut buf);
    let mut out = [0u8; 8];
    out.copy_from_slice(&buf[..8]);
    out
}

/// Interprets the server's one-byte answer to an `SSLRequest`: `true` for `S` (go ahead
/// with the TLS handshake), `false` for `N` (plain only).
pub fn ssl_response(byte: u8) -> Result<bool, Error> {
    match byte {
        b'S' => Ok(true),
        b'N' => Ok(false),
        b'E' => Err(Error::protocol(
            "server sent an error response during SSL exchange",
        )),
        other => Err(Error::protocol(format!(
            "received invalid response to SSL negotiation: {}",
            other.escape_ascii()
        ))),
    }
}

/// What to put in the startup packet and how to authenticate.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct StartupConfig {
    /// The user name.
    pub user: String,
    /// The database (for a physical replication connection it only names the `pg_hba.conf`
    /// database, `replication`).
    pub database: Option<String>,
    /// `application_name`, shown in `pg_stat_replication`.
    pub application_name: Option<String>,
    /// Server command-line options (`options`).
    pub options: Option<String>,
    /// The `replication` startup parameter: `true` for physical replication (the default).
    /// `None` starts an ordinary session (used by tests).
    pub replication: Option<String>,
    /// The password, if known.
    pub password: Option<Vec<u8>>,
    /// Whether SCRAM must, may or must not use channel binding.
    pub channel_binding: ChannelBindingMode,
    /// The authentication methods the server may ask for (libpq's `require_auth`); `None`:
    /// any.
    pub require_auth: Option<RequireAuth>,
    /// The protocol version asked for in the startup packet (default 3.0).
    pub max_protocol_version: ProtocolVersion,
    /// The oldest version accepted when the server negotiates down (default 3.0).
    pub min_protocol_version: ProtocolVersion,
    /// True if the connection runs over TLS.
    pub tls: bool,
    /// The `tls-server-end-point` channel-binding data: the hash of the server's certificate
    /// (see [`tls::server_end_point`](super::tls::server_end_point)). `None` if TLS is off
    /// or the hash could not be computed.
    pub tls_server_end_point: Option<Vec<u8>>,
}

impl std::fmt::Debug for StartupConfig {
    /// Like a derived `Debug`, with the password and channel-binding data left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartupConfig")
            .field("user", &self.user)
            .field("database", &self.database)
            .field("application_name", &self.application_name)
            .field("options", &self.options)
            .field("replication", &self.replication)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("channel_binding", &self.channel_binding)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl StartupConfig {
    /// A physical replication startup for `user` with libpq's defaults otherwise.
    pub fn new(user: &str) -> StartupConfig {
        StartupConfig {
            user: user.to_owned(),
            replication: Some("true".to_owned()),
            ..StartupConfig::default()
        }
    }
}

/// Something the server said.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Authentication and startup finished; commands can be sent.
    Connected,
    /// A run-time parameter was reported (at startup, or when it changed).
    ParameterStatus {
        /// The name.
        name: String,
        /// The value.
        value: String,
    },
    /// A `NoticeResponse` (warnings and notices).
    Notice(Box<DbError>),
    /// A simple query finished; the connection is idle again.
    QueryResult(Vec<ResultSet>),
    /// `START_REPLICATION` was accepted and streaming has begun.
    CopyBothStarted,
    /// WAL data.
    XLogData(XLogData),
    /// A keepalive.
    Keepalive(PrimaryKeepalive),
    /// Streaming ended at the end of a historic timeline; the connection is idle again and
    /// streaming can resume on `next_tli` from the segment holding `next_start`.
    TimelineEnded {
        /// The next timeline.
        next_tli: TimelineId,
        /// Where the next timeline starts (the switch point on the old one).
        next_start: Lsn,
    },
    /// Streaming ended without a timeline switch (after the client's CopyDone, or when the
    /// server stopped sending); the connection is idle again.
    StreamEnded,
}

/// What the results being collected belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResultKind {
    Query,
    Replication,
}

#[derive(Debug)]
enum State {
    /// Waiting for authentication requests.
    Startup,
    /// Authenticated; waiting for the first ReadyForQuery.
    Authenticated,
    Idle,
    /// Collecting result sets until ReadyForQuery.
    Results(ResultKind),
    /// START_REPLICATION sent, waiting for CopyBothResponse (or results, or an error).
    StartReplication,
    Streaming {
        client_done: bool,
    },
    /// An error ended the command; waiting for ReadyForQuery.
    Draining,
    Closed,
}

enum Auth {
    /// No SASL exchange in progress.
    None,
    /// SASLInitialResponse sent; waiting for SASLContinue.
    ScramContinue(Box<ScramSha256>),
    /// SASLResponse sent; waiting for SASLFinal.
    ScramFinal(Box<ScramSha256>),
    /// The server's signature was verified; waiting for AuthenticationOk.
    ScramDone,
}

/// Backend messages: postgres-protocol's, plus those it does not know (or knows only in
/// protocol 3.0's form).
enum Backend {
    Pg(Message),
    CopyBothResponse,
    /// The newest protocol version the server speaks, and the `_pq_.` options it did not
    /// recognise.
    NegotiateProtocolVersion {
        version: u32,
        options: Vec<String>,
    },
    /// The process id and cancel key (4 bytes in 3.0, up to 256 from 3.2).
    KeyData {
        process_id: i32,
        secret: Vec<u8>,
    },
}

/// The protocol state of one replication connection. See the [module docs](self).
pub struct Protocol {
    state: State,
    rx: BytesMut,
    tx: BytesMut,
    user: String,
    password: Option<Vec<u8>>,
    channel_binding: ChannelBindingMode,
    tls: bool,
    end_point: Option<Vec<u8>>,
    auth: Auth,
    require_auth: Option<RequireAuth>,
    /// The client sent its password or finished a SCRAM exchange.
    finished_auth: bool,
    channel_binding_used: bool,
    params: BTreeMap<String, String>,
    /// The version in use: the one asked for, or the one the server negotiated down to.
    version: ProtocolVersion,
    min_version: ProtocolVersion,
    backend_key: Option<(i32, Vec<u8>)>,
    sets: Vec<ResultSet>,
    current: Option<ResultSet>,
    /// Rows and `DataRow` bytes collected for the current command, for the bounds.
    result_rows: usize,
    result_bytes: usize,
}

impl std::fmt::Debug for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protocol")
            .field("state", &self.state)
            .field("user", &self.user)
            .field("tls", &self.tls)
            .field("channel_binding_used", &self.channel_binding_used)
            .field("buffered_in", &self.rx.len())
            .field("buffered_out", &self.tx.len())
            .finish_non_exhaustive()
    }
}

impl Protocol {
    /// Starts a connection: queues the startup packet.
    pub fn new(config: StartupConfig) -> Result<Protocol, Error> {
        let mut params: Vec<(&str, &str)> = vec![("user", config.user.as_str())];
        if let Some(db) = config.database.as_deref() {
            params.push(("database", db));
        }
        if let Some(r) = config.replication.as_deref() {
            params.push(("replication", r));
        }
        if let Some(a) = config.application_name.as_deref() {
            params.push(("application_name", a));
        }
        if let Some(o) = config.options.as_deref() {
            params.push(("options", o));
        }
        let mut tx = BytesMut::with_capacity(256);
        frontend::startup_message(params, &mut tx)
            .map_err(|e| Error::InvalidArgument(format!("invalid startup parameter: {e}")))?;
        // postgres-protocol writes 3.0; the version asked for replaces it.
        tx[4..8].copy_from_slice(&config.max_protocol_version.code().to_be_bytes());
        Ok(Protocol {
            state: State::Startup,
            rx: BytesMut::with_capacity(64 * 1024),
            tx,
            user: config.user,
            password: config.password,
            channel_binding: config.channel_binding,
            tls: config.tls,
            end_point: config.tls_server_end_point,
            auth: Auth::None,
            require_auth: config.require_auth,
            finished_auth: false,
            channel_binding_used: false,
            params: BTreeMap::new(),
            version: config.max_protocol_version,
            min_version: config.min_protocol_version,
            backend_key: None,
            sets: Vec::new(),
            current: None,
            result_rows: 0,
            result_bytes: 0,
        })
    }

    // ---- input ----

    /// Appends bytes received from the server.
    pub fn receive(&mut self, data: &[u8]) {
        self.rx.extend_from_slice(data);
    }

    /// The receive buffer, for reading from a socket straight into it (e.g. with
    /// `AsyncReadExt::read_buf`).
    pub fn receive_buffer(&mut self) -> &mut BytesMut {
        &mut self.rx
    }

    /// Processes buffered input until an event is ready: `Ok(None)` means more bytes are
    /// needed. After an error that ends the connection, every call returns an error.
    ///
    /// A non-fatal server error in answer to a command is returned once; the connection then
    /// drains to `ReadyForQuery` by itself and is usable again (see [`is_idle`](Self::is_idle)).
    pub fn next_event(&mut self) -> Result<Option<Event>, Error> {
        if matches!(self.state, State::Closed) {
            return Err(Error::Closed);
        }
        loop {
            let msg = match self.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(None),
                Err(e) => {
                    self.state = State::Closed;
                    return Err(e);
                }
            };
            match self.handle(msg) {
                Ok(Some(ev)) => return Ok(Some(ev)),
                Ok(None) => continue,
                Err(e) => {
                    let recoverable = matches!(&e, Error::Db(db) if !db.is_fatal());
                    if recoverable && self.expects_ready() {
                        self.state = State::Draining;
                    } else if !(recoverable && matches!(self.state, State::Idle)) {
                        self.state = State::Closed;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// The server closed the connection: returns the error to report and closes the state.
    pub fn connection_lost(&mut self) -> Error {
        self.state = State::Closed;
        Error::Closed
    }

    // ---- output ----

    /// Bytes waiting to be written to the server.
    pub fn pending_output(&self) -> &[u8] {
        &self.tx
    }

    /// Marks the first `n` pending bytes as written.
    pub fn consume_output(&mut self, n: usize) {
        let n = n.min(self.tx.len());
        let _ = self.tx.split_to(n);
    }

    /// Takes all pending output.
    pub fn take_output(&mut self) -> BytesMut {
        self.tx.split()
    }

    /// True if there is output to write.
    pub fn has_output(&self) -> bool {
        !self.tx.is_empty()
    }

    // ---- commands ----

    /// Sends a simple query; its results arrive as [`Event::QueryResult`].
    pub fn send_query(&mut self, sql: &str) -> Result<(), Error> {
        self.require_idle()?;
        frontend::query(sql, &mut self.tx)
            .map_err(|e| Error::InvalidArgument(format!("invalid query text: {e}")))?;
        self.state = State::Results(ResultKind::Query);
        Ok(())
    }

    /// Sends a `START_REPLICATION` command text; expect [`Event::CopyBothStarted`], then
    /// streaming events, or directly [`Event::TimelineEnded`] if the start point is the end
    /// of a historic timeline.
    pub fn send_start_replication(&mut self, sql: &str) -> Result<(), Error> {
        self.require_idle()?;
        frontend::query(sql, &mut self.tx)
            .map_err(|e| Error::InvalidArgument(format!("invalid command text: {e}")))?;
        self.state = State::StartReplication;
        Ok(())
    }

    /// Queues a standby status update. Only while streaming and before the client's CopyDone.
    pub fn send_standby_status(&mut self, status: &StandbyStatusUpdate) -> Result<(), Error> {
        self.require_sending()?;
        self.copy_data(&status.encode());
        Ok(())
    }

    /// Queues hot-standby feedback. Only while streaming and before the client's CopyDone.
    pub fn send_hot_standby_feedback(&mut self, fb: &HotStandbyFeedback) -> Result<(), Error> {
        self.require_sending()?;
        self.copy_data(&fb.encode());
        Ok(())
    }

    /// Ends streaming from the client side (CopyDone). The server answers with its own
    /// CopyDone and the command's completion; WAL already in flight still arrives.
    pub fn send_copy_done(&mut self) -> Result<(), Error> {
        self.require_sending()?;
        frontend::copy_done(&mut self.tx);
        self.state = State::Streaming { client_done: true };
        Ok(())
    }

    /// Queues a `Terminate` message (polite close) and closes the state.
    pub fn send_terminate(&mut self) {
        if !matches!(self.state, State::Closed) {
            frontend::terminate(&mut self.tx);
        }
        self.state = State::Closed;
    }

    fn copy_data(&mut self, payload: &[u8]) {
        self.tx.reserve(5 + payload.len());
        self.tx.put_u8(b'd');
        self.tx.put_u32(4 + payload.len() as u32);
        self.tx.put_slice(payload);
    }

    fn require_idle(&self) -> Result<(), Error> {
        match self.state {
            State::Idle => Ok(()),
            State::Closed => Err(Error::Closed),
            _ => Err(Error::InvalidState("another command is in progress")),
        }
    }

    fn require_sending(&self) -> Result<(), Error> {
        match self.state {
            State::Streaming { client_done: false } => Ok(()),
            State::Closed => Err(Error::Closed),
            _ => Err(Error::InvalidState("not streaming")),
        }
    }

    // ---- state queries ----

    /// True when a command can be sent.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// True after an error ended the connection, or after [`send_terminate`](Self::send_terminate).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// True in the CopyBoth phase (until the server ends it).
    pub fn is_streaming(&self) -> bool {
        matches!(self.state, State::Streaming { .. })
    }

    /// True while status updates can be sent: streaming, and the client has not sent CopyDone.
    pub fn can_send_feedback(&self) -> bool {
        matches!(self.state, State::Streaming { client_done: false })
    }

    /// True while startup (authentication) is still in progress.
    pub fn is_starting(&self) -> bool {
        matches!(self.state, State::Startup | State::Authenticated)
    }

    /// A parameter the server reported (`server_version`, `integer_datetimes`, ...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// All parameters the server reported.
    pub fn parameters(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    /// The server version, from the `server_version` parameter.
    pub fn server_version(&self) -> Option<ServerVersion> {
        self.parameter("server_version")
            .and_then(ServerVersion::parse)
    }

    /// The protocol version in use: the one asked for
    /// ([`StartupConfig::max_protocol_version`]), or the older one a server negotiated down to.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.version
    }

    /// The backend process id and cancel key (`BackendKeyData`: 4 bytes in protocol 3.0, 4 to
    /// 256 from 3.2).
    pub fn backend_key(&self) -> Option<(i32, &[u8])> {
        self.backend_key
            .as_ref()
            .map(|(pid, key)| (*pid, key.as_slice()))
    }

    /// True if authentication used SCRAM-SHA-256-PLUS (channel binding).
    pub fn channel_binding_used(&self) -> bool {
        self.channel_binding_used
    }

    fn expects_ready(&self) -> bool {
        matches!(
            self.state,
            State::Results(_) | State::StartReplication | State::Streaming { .. } | State::Draining
        )
    }

    // ---- message handling ----

    /// Splits one complete message off the receive buffer.
    fn next_message(&mut self) -> Result<Option<Backend>, Error> {
        if self.rx.len() < 5 {
            return Ok(None);
        }
        let tag = self.rx[0];
        let len = u32::from_be_bytes([self.rx[1], self.rx[2], self.rx[3], self.rx[4]]) as usize;
        if len < 4 {
            return Err(Error::protocol(format!(
                "invalid message length {len} for message type \"{}\"",
                tag.escape_ascii()
            )));
        }
        if len > MAX_MESSAGE_LEN {
            return Err(Error::protocol(format!(
                "message of type \"{}\" is too long ({len} bytes)",
                tag.escape_ascii()
            )));
        }
        if tag == b'd' && len > MAX_STREAM_MESSAGE_LEN && self.is_streaming() {
            // Refused before it is buffered: a server never sends this much WAL at once.
            return Err(Error::protocol(format!(
                "CopyData message of {len} bytes while streaming (a server sends at most \
                 {MAX_XLOGDATA_WAL} bytes of WAL per message)"
            )));
        }
        if self.rx.len() < len + 1 {
            // Room for the rest, but never trust a length blindly with a huge allocation.
            self.rx.reserve((len + 1 - self.rx.len()).min(1 << 20));
            return Ok(None);
        }
        match tag {
            b'W' => {
                // CopyBothResponse: Int8 format, Int16 columns, Int16 format per column.
                let body = self.rx.split_to(len + 1);
                let ok = body.len() >= 8 && {
                    let ncols = u16::from_be_bytes([body[6], body[7]]) as usize;
                    body.len() == 8 + 2 * ncols
                };
                if !ok {
                    return Err(Error::protocol("invalid CopyBothResponse message"));
                }
                Ok(Some(Backend::CopyBothResponse))
            }
            b'v' => {
                let body = self.rx.split_to(len + 1);
                parse_negotiate(&body[5..]).map(Some)
            }
            b'K' => {
                let body = self.rx.split_to(len + 1);
                let Some((pid, secret)) = body[5..].split_first_chunk::<4>() else {
                    return Err(Error::protocol("invalid BackendKeyData message"));
                };
                Ok(Some(Backend::KeyData {
                    process_id: i32::from_be_bytes(*pid),
                    secret: secret.to_vec(),
                }))
            }
            _ => match Message::parse(&mut self.rx) {
                Ok(Some(m)) => Ok(Some(Backend::Pg(m))),
                Ok(None) => Ok(None),
                Err(e) => Err(Error::protocol(format!(
                    "invalid message of type \"{}\": {e}",
                    tag.escape_ascii()
                ))),
            },
        }
    }

    fn handle(&mut self, msg: Backend) -> Result<Option<Event>, Error> {
        let msg = match msg {
            Backend::Pg(m) => m,
            Backend::NegotiateProtocolVersion { version, options } => {
                return self.negotiate(version, &options).map(|()| None);
            }
            Backend::KeyData { process_id, secret } => {
                return match self.state {
                    State::Authenticated => {
                        self.check_cancel_key(&secret)?;
                        self.backend_key = Some((process_id, secret));
                        Ok(None)
                    }
                    _ => Err(self.unexpected("BackendKeyData")),
                };
            }
            Backend::CopyBothResponse => {
                return match self.state {
                    State::StartReplication => {
                        self.state = State::Streaming { client_done: false };
                        Ok(Some(Event::CopyBothStarted))
                    }
                    _ => Err(self.unexpected("CopyBothResponse")),
                };
            }
        };
        // Messages valid in every state.
        match msg {
            Message::ErrorResponse(body) => {
                let e = DbError::parse(body.fields())?;
                if matches!(self.state, State::Draining) && !e.is_fatal() {
                    Ok(None)
                } else {
                    Err(Error::Db(Box::new(e)))
                }
            }
            Message::NoticeResponse(body) => {
                let e = DbError::parse(body.fields())?;
                Ok(Some(Event::Notice(Box::new(e))))
            }
            Message::ParameterStatus(body) => {
                let name = body
                    .name()
                    .map_err(|e| Error::protocol(format!("invalid ParameterStatus: {e}")))?
                    .to_owned();
                let value = body
                    .value()
                    .map_err(|e| Error::protocol(format!("invalid ParameterStatus: {e}")))?
                    .to_owned();
                if self.params.len() >= MAX_PARAMETERS && !self.params.contains_key(&name) {
                    return Err(Error::protocol(format!(
                        "the server reported more than {MAX_PARAMETERS} parameters"
                    )));
                }
                self.params.insert(name.clone(), value.clone());
                Ok(Some(Event::ParameterStatus { name, value }))
            }
            Message::NotificationResponse(_) => Ok(None),
            m => self.handle_in_state(m),
        }
    }

    fn handle_in_state(&mut self, msg: Message) -> Result<Option<Event>, Error> {
        match self.state {
            State::Startup => self.handle_auth(msg),
            State::Authenticated => match msg {
                Message::ReadyForQuery(_) => {
                    self.state = State::Idle;
                    Ok(Some(Event::Connected))
                }
                m => Err(self.unexpected(message_name(&m))),
            },
            State::Idle => Err(self.unexpected(message_name(&msg))),
            State::Results(kind) => self.handle_result(kind, msg),
            State::StartReplication => match msg {
                // The start point is the end of a historic timeline: no COPY, just the
                // next-timeline result set.
                m @ (Message::RowDescription(_)
                | Message::CommandComplete(_)
                | Message::DataRow(_)
                | Message::EmptyQueryResponse
                | Message::ReadyForQuery(_)) => {
                    self.state = State::Results(ResultKind::Replication);
                    self.handle_result(ResultKind::Replication, m)
                }
                m => Err(self.unexpected(message_name(&m))),
            },
            State::Streaming { client_done } => match msg {
                Message::CopyData(body) => match ServerMessage::parse(body.into_bytes())? {
                    ServerMessage::XLogData(x) => Ok(Some(Event::XLogData(x))),
                    ServerMessage::Keepalive(k) => Ok(Some(Event::Keepalive(k))),
                },
                Message::CopyDone => {
                    if !client_done {
                        // Answer the server's CopyDone, as libpq's PQputCopyEnd does.
                        frontend::copy_done(&mut self.tx);
                    }
                    self.state = State::Results(ResultKind::Replication);
                    Ok(None)
                }
                m @ (Message::RowDescription(_) | Message::CommandComplete(_)) => {
                    self.state = State::Results(ResultKind::Replication);
                    self.handle_result(ResultKind::Replication, m)
                }
                m => Err(self.unexpected(message_name(&m))),
            },
            State::Draining => match msg {
                Message::ReadyForQuery(_) => {
                    self.sets.clear();
                    self.current = None;
                    self.result_rows = 0;
                    self.result_bytes = 0;
                    self.state = State::Idle;
                    Ok(None)
                }
                // Anything else belongs to the failed command.
                _ => Ok(None),
            },
            State::Closed => Err(Error::Closed),
        }
    }

    fn handle_result(&mut self, kind: ResultKind, msg: Message) -> Result<Option<Event>, Error> {
        match msg {
            Message::RowDescription(body) => {
                let mut columns = Vec::new();
                let mut fields = body.fields();
                while let Some(f) = fields
                    .next()
                    .map_err(|e| Error::protocol(format!("invalid RowDescription: {e}")))?
                {
                    columns.push(Column {
                        name: f.name().to_owned(),
                        type_oid: f.type_oid(),
                    });
                }
                if let Some(prev) = self.current.take() {
                    self.sets.push(prev);
                }
                self.current = Some(ResultSet {
                    columns,
                    rows: Vec::new(),
                    tag: None,
                });
                Ok(None)
            }
            Message::DataRow(body) => {
                let current = self
                    .current
                    .as_mut()
                    .ok_or_else(|| Error::protocol("DataRow without RowDescription"))?;
                let buf = body.buffer_bytes().clone();
                self.result_rows += 1;
                self.result_bytes = self.result_bytes.saturating_add(buf.len() + 5);
                if self.result_rows > MAX_RESULT_ROWS || self.result_bytes > MAX_RESULT_BYTES {
                    return Err(Error::protocol(format!(
                        "the server sent more than {MAX_RESULT_ROWS} rows or {MAX_RESULT_BYTES} \
                         bytes of rows in answer to one command"
                    )));
                }
                let mut values = Vec::with_capacity(current.columns.len().min(64));
                let mut ranges = body.ranges();
                while let Some(r) = ranges
                    .next()
                    .map_err(|e| Error::protocol(format!("invalid DataRow: {e}")))?
                {
                    values.push(r.map(|r| buf.slice(r)));
                }
                if values.len() != current.columns.len() {
                    return Err(Error::protocol(format!(
                        "DataRow has {} values for {} columns",
                        values.len(),
                        current.columns.len()
                    )));
                }
                current.rows.push(Row::new(values));
                Ok(None)
            }
            Message::CommandComplete(body) => {
                let tag = body
                    .tag()
                    .map_err(|e| Error::protocol(format!("invalid CommandComplete: {e}")))?
                    .to_owned();
                let mut set = self.current.take().unwrap_or_default();
                set.tag = Some(tag);
                self.sets.push(set);
                Ok(None)
            }
            Message::EmptyQueryResponse => {
                self.sets.push(ResultSet::default());
                Ok(None)
            }
            Message::ReadyForQuery(_) => {
                if let Some(set) = self.current.take() {
                    self.sets.push(set);
                }
                let sets = mem::take(&mut self.sets);
                self.result_rows = 0;
                self.result_bytes = 0;
                self.state = State::Idle;
                match kind {
                    ResultKind::Query => Ok(Some(Event::QueryResult(sets))),
                    ResultKind::Replication => {
                        if sets.iter().any(|s| !s.columns.is_empty()) {
                            let sw = TimelineSwitch::from_results(&sets)?;
                            Ok(Some(Event::TimelineEnded {
                                next_tli: sw.next_tli,
                                next_start: sw.next_start,
                            }))
                        } else {
                            Ok(Some(Event::StreamEnded))
                        }
                    }
                }
            }
            Message::CopyInResponse(_) | Message::CopyOutResponse(_) => Err(Error::protocol(
                "COPY IN/OUT is not supported on a replication connection",
            )),
            m => Err(self.unexpected(message_name(&m))),
        }
    }

    fn handle_auth(&mut self, msg: Message) -> Result<Option<Event>, Error> {
        match msg {
            Message::AuthenticationOk => {
                match self.auth {
                    Auth::None | Auth::ScramDone => {}
                    Auth::ScramContinue(_) | Auth::ScramFinal(_) => {
                        return Err(Error::Auth(
                            "server sent AuthenticationOk before the SCRAM exchange finished"
                                .into(),
                        ))
                    }
                }
                if self
                    .require_auth
                    .as_ref()
                    .is_some_and(|r| r.auth_required() && !self.finished_auth)
                {
                    return Err(self.requirement_failed("server did not complete authentication"));
                }
                if self.channel_binding == ChannelBindingMode::Require && !self.channel_binding_used
                {
                    return Err(Error::Auth(
                        "channel binding required, but server authenticated client without \
                         channel binding"
                            .into(),
                    ));
                }
                self.auth = Auth::None;
                self.state = State::Authenticated;
                Ok(None)
            }
            Message::AuthenticationCleartextPassword => {
                self.require(
                    AuthMethod::Password,
                    "server requested a cleartext password",
                )?;
                self.refuse_without_channel_binding()?;
                let pw = self.password.clone().ok_or(Error::PasswordRequired)?;
                frontend::password_message(&pw, &mut self.tx)
                    .map_err(|e| Error::InvalidArgument(format!("invalid password: {e}")))?;
                self.finished_auth = true;
                Ok(None)
            }
            Message::AuthenticationMd5Password(body) => {
                self.require(AuthMethod::Md5, "server requested a hashed password")?;
                self.refuse_without_channel_binding()?;
                let pw = self.password.as_ref().ok_or(Error::PasswordRequired)?;
                let hash = md5_hash(self.user.as_bytes(), pw, body.salt());
                frontend::password_message(hash.as_bytes(), &mut self.tx)
                    .map_err(|e| Error::InvalidArgument(format!("invalid password: {e}")))?;
                self.finished_auth = true;
                Ok(None)
            }
            Message::AuthenticationSasl(body) => {
                if !matches!(self.auth, Auth::None) {
                    return Err(Error::protocol("unexpected AuthenticationSASL"));
                }
                if self.require_auth.as_ref().is_some_and(|r| !r.allows_sasl()) {
                    return Err(self.requirement_failed("server requested SASL authentication"));
                }
                let mut has_scram = false;
                let mut has_plus = false;
                let mut mechs = body.mechanisms();
                while let Some(m) = mechs
                    .next()
                    .map_err(|e| Error::protocol(format!("invalid AuthenticationSASL: {e}")))?
                {
                    has_scram |= m == SCRAM_SHA_256;
                    has_plus |= m == SCRAM_SHA_256_PLUS;
                }
                let (mechanism, binding) = self.choose_sasl(has_scram, has_plus)?;
                self.require(
                    AuthMethod::ScramSha256,
                    &format!("server requested {mechanism} authentication"),
                )?;
                let pw = self.password.as_ref().ok_or(Error::PasswordRequired)?;
                let scram = ScramSha256::new(pw, binding);
                frontend::sasl_initial_response(mechanism, scram.message(), &mut self.tx)
                    .map_err(|e| Error::protocol(format!("SASL: {e}")))?;
                self.channel_binding_used = mechanism == SCRAM_SHA_256_PLUS;
                self.auth = Auth::ScramContinue(Box::new(scram));
                Ok(None)
            }
            Message::AuthenticationSaslContinue(body) => {
                let mut scram = match mem::replace(&mut self.auth, Auth::None) {
                    Auth::ScramContinue(s) => s,
                    _ => return Err(Error::protocol("unexpected AuthenticationSASLContinue")),
                };
                scram
                    .update(body.data())
                    .map_err(|e| Error::Auth(format!("invalid SCRAM server-first message: {e}")))?;
                frontend::sasl_response(scram.message(), &mut self.tx)
                    .map_err(|e| Error::protocol(format!("SASL: {e}")))?;
                self.auth = Auth::ScramFinal(scram);
                Ok(None)
            }
            Message::AuthenticationSaslFinal(body) => {
                let mut scram = match mem::replace(&mut self.auth, Auth::None) {
                    Auth::ScramFinal(s) => s,
                    _ => return Err(Error::protocol("unexpected AuthenticationSASLFinal")),
                };
                scram
                    .finish(body.data())
                    .map_err(|e| Error::Auth(format!("SCRAM server verification failed: {e}")))?;
                self.auth = Auth::ScramDone;
                self.finished_auth = true;
                Ok(None)
            }
            Message::AuthenticationGss | Message::AuthenticationGssContinue(_) => {
                self.require(AuthMethod::Gss, "server requested GSSAPI authentication")?;
                Err(Error::Auth("GSSAPI authentication is not supported".into()))
            }
            Message::AuthenticationSspi => {
                self.require(AuthMethod::Sspi, "server requested SSPI authentication")?;
                Err(Error::Auth("SSPI authentication is not supported".into()))
            }
            Message::AuthenticationKerberosV5 => Err(Error::Auth(
                "Kerberos 5 authentication is not supported".into(),
            )),
            Message::AuthenticationScmCredential => Err(Error::Auth(
                "SCM credential authentication is not supported".into(),
            )),
            m => Err(self.unexpected(message_name(&m))),
        }
    }

    /// Refuses `method` unless `require_auth` allows it; `reason` says what the server asked.
    fn require(&self, method: AuthMethod, reason: &str) -> Result<(), Error> {
        match &self.require_auth {
            Some(r) if !r.allows(method) => Err(self.requirement_failed(reason)),
            _ => Ok(()),
        }
    }

    /// The error for a `require_auth` the server did not meet.
    fn requirement_failed(&self, reason: &str) -> Error {
        Error::AuthMethodRequirement {
            required: self
                .require_auth
                .as_ref()
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
            reason: reason.to_owned(),
        }
    }

    /// libpq's mechanism choice (`pg_SASL_init()`).
    fn choose_sasl(
        &self,
        has_scram: bool,
        has_plus: bool,
    ) -> Result<(&'static str, ChannelBinding), Error> {
        if has_plus && self.channel_binding != ChannelBindingMode::Disable {
            if !self.tls {
                return Err(Error::Auth(
                    "server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection"
                        .into(),
                ));
            }
            if let Some(hash) = &self.end_point {
                return Ok((
                    SCRAM_SHA_256_PLUS,
                    ChannelBinding::tls_server_end_point(hash.clone()),
                ));
            }
            if self.channel_binding == ChannelBindingMode::Require {
                return Err(Error::Auth(
                    "channel binding is required, but the server certificate's hash \
                     algorithm is not supported"
                        .into(),
                ));
            }
            // Cannot bind: say "not supported" ('n'); 'y' would look like a downgrade attack.
            if has_scram {
                return Ok((SCRAM_SHA_256, ChannelBinding::unsupported()));
            }
        }
        if !has_scram {
            return Err(Error::Auth(
                "none of the server's SASL authentication mechanisms are supported".into(),
            ));
        }
        if self.channel_binding == ChannelBindingMode::Require {
            return Err(Error::Auth(
                "channel binding is required, but server did not offer an authentication method \
                 that supports channel binding"
                    .into(),
            ));
        }
        let binding = if self.tls && self.channel_binding != ChannelBindingMode::Disable {
            // The client supports binding but the server did not offer it.
            ChannelBinding::unrequested()
        } else {
            ChannelBinding::unsupported()
        };
        Ok((SCRAM_SHA_256, binding))
    }

    fn refuse_without_channel_binding(&self) -> Result<(), Error> {
        if self.channel_binding == ChannelBindingMode::Require {
            return Err(Error::Auth(
                "channel binding required but not supported by server's authentication request"
                    .into(),
            ));
        }
        Ok(())
    }

    /// NegotiateProtocolVersion: the server speaks only protocol `version` (its newest), and
    /// did not recognise `options`. Checked as libpq does: only at startup, only downwards, to
    /// an existing version no older than the minimum, and never naming an option (pgwal asks
    /// for none).
    fn negotiate(&mut self, version: u32, options: &[String]) -> Result<(), Error> {
        if !matches!(self.state, State::Startup) {
            return Err(self.unexpected("NegotiateProtocolVersion"));
        }
        let invalid = |why: &str| {
            Error::protocol(format!(
                "received invalid protocol negotiation message: {why}"
            ))
        };
        if version > self.version.code() {
            return Err(invalid(
                "server requested downgrade to a higher-numbered version",
            ));
        }
        if version < ProtocolVersion::V3_0.code() {
            return Err(invalid(
                "server requested downgrade to pre-3.0 protocol version",
            ));
        }
        let Some(server) = ProtocolVersion::from_code(version) else {
            return Err(invalid(&format!(
                "server requested downgrade to non-existent {}.{} protocol version",
                version >> 16,
                version & 0xffff
            )));
        };
        if let Some(o) = options.first() {
            return Err(invalid(&if o.starts_with("_pq_.") {
                format!("server reported an unsupported parameter that was not requested (\"{o}\")")
            } else {
                format!(
                    "server reported unsupported parameter name without a _pq_. prefix (\"{o}\")"
                )
            }));
        }
        if server == self.version {
            return Err(invalid("server negotiated but asks for no changes"));
        }
        if server < self.min_version {
            return Err(Error::ProtocolVersion {
                server,
                min: self.min_version,
            });
        }
        self.version = server;
        Ok(())
    }

    /// A cancel key's length as the protocol version in use allows.
    fn check_cancel_key(&self, key: &[u8]) -> Result<(), Error> {
        let len = key.len();
        let why = if self.version == ProtocolVersion::V3_0 && len != 4 {
            format!("cancel key with length {len} not allowed in protocol version 3.0 (must be 4 bytes)")
        } else if len < 4 {
            format!("cancel key with length {len} is too short (minimum 4 bytes)")
        } else if len > 256 {
            format!("cancel key with length {len} is too long (maximum 256 bytes)")
        } else {
            return Ok(());
        };
        Err(Error::protocol(format!(
            "received invalid BackendKeyData message: {why}"
        )))
    }

    fn unexpected(&self, what: &str) -> Error {
        Error::protocol(format!(
            "unexpected {what} message in state {:?}",
            self.state
        ))
    }

    /// Test and fuzzing support: puts a fresh protocol straight into a later state.
    #[doc(hidden)]
    pub fn force_state_for_testing(&mut self, state: &str) {
        self.tx.clear();
        self.state = match state {
            "idle" => State::Idle,
            "query" => State::Results(ResultKind::Query),
            "start" => State::StartReplication,
            "streaming" => State::Streaming { client_done: false },
            _ => State::Startup,
        };
    }
}

/// A name for a backend message, for error messages.
/// The body of a NegotiateProtocolVersion message: the newest version the server speaks, then
/// the options it did not recognise.
fn parse_negotiate(body: &[u8]) -> Result<Backend, Error> {
    let invalid = || Error::protocol("invalid NegotiateProtocolVersion message");
    let (version, rest) = body.split_first_chunk::<4>().ok_or_else(invalid)?;
    let (count, mut rest) = rest.split_first_chunk::<4>().ok_or_else(invalid)?;
    let count = i32::from_be_bytes(*count);
    if count < 0 {
        return Err(Error::protocol(
            "received invalid protocol negotiation message: server reported negative number of unsupported parameters",
        ));
    }
    let mut options = Vec::new();
    for _ in 0..count {
        let end = rest.iter().position(|&b| b == 0).ok_or_else(invalid)?;
        options.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        return Err(invalid());
    }
    Ok(Backend::NegotiateProtocolVersion {
        version: u32::from_be_bytes(*version),
        options,
    })
}

fn message_name(m: &Message) -> &'static str {
    match m {
        Message::AuthenticationCleartextPassword
        | Message::AuthenticationGss
        | Message::AuthenticationKerberosV5
        | Message::AuthenticationMd5Password(_)
        | Message::AuthenticationOk
        | Message::AuthenticationScmCredential
        | Message::AuthenticationSspi
        | Message::AuthenticationGssContinue(_)
        | Message::AuthenticationSasl(_)
        | Message::AuthenticationSaslContinue(_)
        | Message::AuthenticationSaslFinal(_) => "Authentication",
        Message::BackendKeyData(_) => "BackendKeyData",
        Message::BindComplete => "BindComplete",
        Message::CloseComplete => "CloseComplete",
        Message::CommandComplete(_) => "CommandComplete",
        Message::CopyData(_) => "CopyData",
        Message::CopyDone => "CopyDone",
        Message::CopyInResponse(_) => "CopyInResponse",
        Message::CopyOutResponse(_) => "CopyOutResponse",
        Message::DataRow(_) => "DataRow",
        Message::EmptyQueryResponse => "EmptyQueryResponse",
        Message::ErrorResponse(_) => "ErrorResponse",
        Message::NoData => "NoData",
        Message::NoticeResponse(_) => "NoticeResponse",
        Message::NotificationResponse(_) => "NotificationResponse",
        Message::ParameterDescription(_) => "ParameterDescription",
        Message::ParameterStatus(_) => "ParameterStatus",
        Message::ParseComplete => "ParseComplete",
        Message::PortalSuspended => "PortalSuspended",
        Message::ReadyForQuery(_) => "ReadyForQuery",
        Message::RowDescription(_) => "RowDescription",
        _ => "unknown",
    }
}

/// The write, flush and apply positions reported to the server, each kept monotonic: an
/// update to an older position is ignored.
///
/// ```
/// use pgwal::replication::protocol::FeedbackPositions;
/// use pgwal::Lsn;
/// let mut p = FeedbackPositions::default();
/// p.set_write(Lsn(200));
/// p.set_write(Lsn(100)); // ignored: never moves back
/// p.set_flush(Lsn(150));
/// assert_eq!(p.write(), Lsn(200));
/// assert_eq!(p.flush(), Lsn(150));
/// assert_eq!(p.apply(), Lsn::INVALID);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedbackPositions {
    write: Lsn,
    flush: Lsn,
    apply: Lsn,
}

impl FeedbackPositions {
    /// Raises the write position.
    pub fn set_write(&mut self, lsn: Lsn) {
        self.write = self.write.max(lsn);
    }

    /// Raises the flush position.
    pub fn set_flush(&mut self, lsn: Lsn) {
        self.flush = self.flush.max(lsn);
    }

    /// Raises the apply position.
    pub fn set_apply(&mut self, lsn: Lsn) {
        self.apply = self.apply.max(lsn);
    }

    /// The write position.
    pub fn write(&self) -> Lsn {
        self.write
    }

    /// The flush position.
    pub fn flush(&self) -> Lsn {
        self.flush
    }

    /// The apply position.
    pub fn apply(&self) -> Lsn {
        self.apply
    }

    /// A status update carrying these positions.
    pub fn status_update(
        &self,
        now: super::PgTimestamp,
        reply_requested: bool,
    ) -> StandbyStatusUpdate {
        StandbyStatusUpdate {
            write: self.write,
            flush: self.flush,
            apply: self.apply,
            client_time: now,
            reply_requested,
        }
    }
}

#[cfg(test)]
mod tests;
