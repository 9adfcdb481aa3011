//! The tokio driver: owns the socket (TCP, Unix or TLS), the timers and cancellation, and
//! drives a [`Protocol`].
//!
//! Every method is cancellation-safe in the sense that dropping its future never corrupts the
//! connection: unsent bytes stay queued in the protocol core, and the next command first
//! finishes (and discards) whatever an abandoned command or stream left in flight.

use std::future::{poll_fn, Future};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{Instant, Sleep};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::command::{
    show_value, CreateSlotOptions, CreatedSlot, IdentifySystem, ReplicationCommand, ServerVersion,
    SlotInfo, SlotName, StartReplication, TimelineHistoryFile,
};
use super::message::{HotStandbyFeedback, PgTimestamp, PrimaryKeepalive, XLogData};
use super::protocol::{Event, FeedbackPositions, Protocol, ResultSet, StartupConfig};
use super::tls::{server_end_point, TlsSetup};
use super::Error;
use crate::conninfo::{Config, Host, HostSpec, SslMode, SslNegotiation};
use crate::{Lsn, TimelineId, WalSegSize};

/// The socket under a connection.
enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Room for a read: at least this much free space in the receive buffer...
const MIN_READ: usize = 64 * 1024;
/// ...else this much more is reserved.
const READ_BUFFER: usize = 1024 * 1024;

/// A socket plus the protocol state, with the poll functions both the client and the stream
/// use.
struct Connection {
    socket: Socket,
    proto: Protocol,
}

impl Connection {
    /// Writes all queued output and flushes.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        while self.proto.has_output() {
            let n = ready!(Pin::new(&mut self.socket).poll_write(cx, self.proto.pending_output()))?;
            if n == 0 {
                return Poll::Ready(Err(Error::Io(io::ErrorKind::WriteZero.into())));
            }
            self.proto.consume_output(n);
        }
        ready!(Pin::new(&mut self.socket).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    /// The next protocol event, reading as needed. Queued output is written along the way
    /// (without waiting for it, so a full send buffer cannot stall reading).
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, Error>> {
        match ready!(self.poll_event_or_idle(cx, false)) {
            Ok(Some(ev)) => Poll::Ready(Ok(ev)),
            Ok(None) => Poll::Ready(Err(Error::protocol("no event"))),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Like [`poll_event`](Self::poll_event), but if `until_idle` also returns `Ok(None)` as
    /// soon as the protocol is idle with nothing left to report (after draining a failed
    /// command, which produces no event).
    fn poll_event_or_idle(
        &mut self,
        cx: &mut Context<'_>,
        until_idle: bool,
    ) -> Poll<Result<Option<Event>, Error>> {
        loop {
            if let Some(ev) = self.proto.next_event()? {
                return Poll::Ready(Ok(Some(ev)));
            }
            if until_idle && self.proto.is_idle() {
                return Poll::Ready(Ok(None));
            }
            // Processing may have queued answers (passwords, CopyDone): send them before
            // waiting for the server.
            if let Poll::Ready(Err(e)) = self.poll_write_out(cx) {
                return Poll::Ready(Err(e));
            }
            let buf = self.proto.receive_buffer();
            if buf.capacity() - buf.len() < MIN_READ {
                // Big reads: fewer system calls and wake-ups while streaming. The messages
                // already split off keep the old buffer alive, so a new one is allocated and
                // only the incomplete message at its end is copied.
                buf.reserve(READ_BUFFER);
            }
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut self.socket),
                cx,
                buf
            ))?;
            if n == 0 {
                return Poll::Ready(Err(self.proto.connection_lost()));
            }
        }
    }

    async fn next_event(&mut self) -> Result<Event, Error> {
        poll_fn(|cx| self.poll_event(cx)).await
    }

    async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.poll_write_out(cx)).await
    }
}

/// A physical replication connection (`replication=true`).
///
/// ```no_run
/// # async fn demo() -> Result<(), pgwal::replication::Error> {
/// use pgwal::conninfo::Config;
/// use pgwal::replication::{ReplicationClient, SlotName, CreateSlotOptions};
///
/// let config = Config::parse("host=db1 user=rep sslmode=verify-full")?;
/// let mut client = ReplicationClient::connect(&config).await?;
/// let id = client.identify_system().await?;
/// println!("system {} on timeline {} at {}", id.system_id, id.timeline, id.xlogpos);
/// let slot = SlotName::new("archiver")?;
/// client
///     .create_replication_slot(&slot, CreateSlotOptions { reserve_wal: true, ..Default::default() })
///     .await?;
/// # Ok(()) }
/// ```
pub struct ReplicationClient {
    conn: Connection,
    host: HostSpec,
    peer: Option<SocketAddr>,
    tls: bool,
}

impl std::fmt::Debug for ReplicationClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationClient")
            .field("host", &self.host)
            .field("peer", &self.peer)
            .field("tls", &self.tls)
            .field("protocol", &self.conn.proto)
            .finish()
    }
}

/// Where one connection attempt goes.
#[derive(Clone, Debug)]
enum Target {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// libpq's wording for a server in messages.
fn describe(host: &HostSpec, target: Option<&Target>) -> String {
    match (&host.host, target) {
        (Host::Unix(_), _) | (_, Some(Target::Unix(_))) => {
            let path = host.socket_path().unwrap_or_default();
            format!("on socket \"{}\"", path.display())
        }
        (Host::Tcp { name, .. }, Some(Target::Tcp(addr))) => match name {
            Some(n) if *n != addr.ip().to_string() => {
                format!("at \"{n}\" ({}), port {}", addr.ip(), addr.port())
            }
            _ => format!("at \"{}\", port {}", addr.ip(), addr.port()),
        },
        (Host::Tcp { name, addr }, None) => {
            let shown = name
                .clone()
                .or_else(|| addr.map(|a| a.to_string()))
                .unwrap_or_default();
            format!("at \"{shown}\", port {}", host.port)
        }
    }
}

impl ReplicationClient {
    /// Connects to the first host of `config` that accepts, in order, like libpq: every
    /// address of every host is tried, each within `connect_timeout`, with TLS per
    /// `sslmode`, and the password (if needed) from the configuration or the password file.
    ///
    /// The startup packet carries `replication=true`, the application name, and as the
    /// database `config.dbname` or else `replication` (which only matters for `pg_hba.conf`
    /// and password-file matching).
    ///
    /// With one host, its error is returned as is (a wrong password is [`Error::Db`] with
    /// SQLSTATE `28P01`); with several, [`Error::AllHostsFailed`] lists each attempt.
    pub async fn connect(config: &Config) -> Result<ReplicationClient, Error> {
        Self::connect_as(config, false).await
    }

    /// An ordinary connection (no `replication` parameter; the database is `config.dbname`,
    /// else the user name, as in libpq), made exactly as [`ReplicationClient::connect`] makes
    /// its: for catalog queries with [`ReplicationClient::simple_query`] (`pgwal dump --names`).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), pgwal::replication::Error> {
    /// let config = pgwal::conninfo::Config::parse("host=db1 dbname=app")?;
    /// let mut client = pgwal::replication::ReplicationClient::connect_sql(&config).await?;
    /// let sets = client.simple_query("SELECT datname FROM pg_database").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_sql(config: &Config) -> Result<ReplicationClient, Error> {
        Self::connect_as(config, true).await
    }

    async fn connect_as(config: &Config, sql: bool) -> Result<ReplicationClient, Error> {
        let mut tls_setup: Option<TlsSetup> = None;
        let mut failures: Vec<(String, Error)> = Vec::new();
        for host in &config.hosts {
            let targets = match resolve(host).await {
                Ok(t) => t,
                Err(e) => {
                    failures.push((describe(host, None), e));
                    continue;
                }
            };
            for target in targets {
                let desc = describe(host, Some(&target));
                let needs_tls =
                    matches!(target, Target::Tcp(_)) && config.ssl_mode != SslMode::Disable;
                if needs_tls && tls_setup.is_none() {
                    // Certificate files are read once, on the first TCP attempt.
                    tls_setup = Some(TlsSetup::from_config(config)?);
                }
                let attempt = attempt(config, host, &target, &desc, tls_setup.as_ref(), sql);
                let result = match config.connect_timeout {
                    Some(t) => match tokio::time::timeout(t, attempt).await {
                        Ok(r) => r,
                        Err(_) => Err(Error::Timeout {
                            target: desc.clone(),
                        }),
                    },
                    None => attempt.await,
                };
                match result {
                    Ok(client) => return Ok(client),
                    Err(e) => {
                        tracing::debug!("connection to server {desc} failed: {e}");
                        failures.push((desc, e));
                    }
                }
            }
        }
        if failures.len() == 1 {
            if let Some((_, e)) = failures.pop() {
                return Err(e);
            }
        }
        Err(Error::AllHostsFailed(failures))
    }

    /// The host this client is connected to.
    pub fn host(&self) -> &HostSpec {
        &self.host
    }

    /// The peer address, for TCP connections.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// True if the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// True if SCRAM-SHA-256-PLUS (channel binding) authenticated the connection.
    pub fn channel_binding_used(&self) -> bool {
        self.conn.proto.channel_binding_used()
    }

    /// A parameter the server reported at startup (`server_version`, `integer_datetimes`, ...).
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.conn.proto.parameter(name)
    }

    /// The server version, from `server_version`.
    pub fn server_version(&self) -> Option<ServerVersion> {
        self.conn.proto.server_version()
    }

    /// The walsender's process id.
    pub fn backend_pid(&self) -> Option<i32> {
        self.conn.proto.backend_key().map(|(pid, _)| pid)
    }

    /// The protocol version in use (3.2 only when asked for with `max_protocol_version` and the
    /// server is 18 or newer).
    pub fn protocol_version(&self) -> crate::conninfo::ProtocolVersion {
        self.conn.proto.protocol_version()
    }

    /// The protocol core (for inspection).
    pub fn protocol(&self) -> &Protocol {
        &self.conn.proto
    }

    fn version(&self) -> ServerVersion {
        self.server_version().unwrap_or(ServerVersion(0))
    }

    /// Finishes whatever an abandoned command or stream left in flight.
    async fn ensure_idle(&mut self) -> Result<(), Error> {
        loop {
            let p = &mut self.conn.proto;
            if p.is_idle() {
                return Ok(());
            }
            if p.is_closed() {
                return Err(Error::Closed);
            }
            if p.can_send_feedback() {
                // A stream was dropped mid-copy: end it.
                p.send_copy_done()?;
            }
            match poll_fn(|cx| self.conn.poll_event_or_idle(cx, true)).await {
                Ok(None) => {}
                Ok(Some(ev)) => tracing::trace!("discarding {ev:?} of an abandoned command"),
                Err(e) if e.is_recoverable() => {
                    tracing::debug!("discarding error of an abandoned command: {e}")
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Runs a command and collects its result sets.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<ResultSet>, Error> {
        self.ensure_idle().await?;
        self.conn.proto.send_query(sql)?;
        loop {
            match self.conn.next_event().await? {
                Event::QueryResult(r) => return Ok(r),
                Event::Notice(n) => log_notice(&n),
                Event::ParameterStatus { .. } => {}
                other => {
                    return Err(Error::protocol(format!(
                        "unexpected {other:?} in answer to a query"
                    )))
                }
            }
        }
    }

    async fn command(&mut self, cmd: ReplicationCommand<'_>) -> Result<Vec<ResultSet>, Error> {
        let sql = cmd.to_sql(self.version())?;
        self.simple_query(&sql).await
    }

    /// `IDENTIFY_SYSTEM`: system identifier, timeline, current WAL position.
    pub async fn identify_system(&mut self) -> Result<IdentifySystem, Error> {
        let r = self.command(ReplicationCommand::IdentifySystem).await?;
        IdentifySystem::from_results(&r)
    }

    /// `SHOW name`: a configuration parameter's value.
    pub async fn show(&mut self, name: &str) -> Result<String, Error> {
        let r = self.command(ReplicationCommand::Show(name)).await?;
        show_value(&r)
    }

    /// `SHOW wal_segment_size`, parsed.
    pub async fn wal_segment_size(&mut self) -> Result<WalSegSize, Error> {
        let v = self.show("wal_segment_size").await?;
        WalSegSize::from_show(&v).ok_or_else(|| {
            Error::result(
                "SHOW",
                format!("invalid wal_segment_size \"{v}\" (must be a power of two between 1 MB and 1 GB)"),
            )
        })
    }

    /// `SHOW wal_block_size` (the WAL page size, `XLOG_BLCKSZ`), checked: a power of two
    /// from 1 kB to 64 kB.
    pub async fn wal_block_size(&mut self) -> Result<u32, Error> {
        let v = self.show("wal_block_size").await?;
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| crate::segment::is_valid_page_size(n))
            .ok_or_else(|| {
                Error::result(
                    "SHOW",
                    format!(
                        "invalid wal_block_size \"{v}\" (must be a power of two between 1 kB and 64 kB)"
                    ),
                )
            })
    }

    /// `TIMELINE_HISTORY tli`: the history file of a timeline (there is none for timeline 1).
    pub async fn timeline_history(
        &mut self,
        tli: TimelineId,
    ) -> Result<TimelineHistoryFile, Error> {
        let r = self
            .command(ReplicationCommand::TimelineHistory(tli))
            .await?;
        TimelineHistoryFile::from_results(tli, &r)
    }

    /// `CREATE_REPLICATION_SLOT "name" [TEMPORARY] PHYSICAL [RESERVE_WAL]`, in the syntax of
    /// the server's version.
    pub async fn create_replication_slot(
        &mut self,
        name: &SlotName,
        options: CreateSlotOptions,
    ) -> Result<CreatedSlot, Error> {
        let r = self
            .command(ReplicationCommand::CreatePhysicalSlot { name, options })
            .await?;
        CreatedSlot::from_results(&r)
    }

    /// `DROP_REPLICATION_SLOT "name" [WAIT]`.
    pub async fn drop_replication_slot(
        &mut self,
        name: &SlotName,
        wait: bool,
    ) -> Result<(), Error> {
        self.command(ReplicationCommand::DropSlot { name, wait })
            .await
            .map(drop)
    }

    /// `READ_REPLICATION_SLOT name` (PostgreSQL 15+; [`Error::UnsupportedByServer`] before).
    pub async fn read_replication_slot(&mut self, name: &SlotName) -> Result<SlotInfo, Error> {
        let r = self
            .command(ReplicationCommand::ReadReplicationSlot(name))
            .await?;
        SlotInfo::from_results(&r)
    }

    /// `START_REPLICATION` with default [`StreamOptions`].
    pub async fn start_replication(
        &mut self,
        cmd: &StartReplication,
    ) -> Result<ReplicationStream<'_>, Error> {
        self.start_replication_with(cmd, StreamOptions::default())
            .await
    }

    /// `START_REPLICATION`: returns the stream of WAL once the server has accepted.
    ///
    /// If `cmd.start` is exactly the end of a historic timeline the server skips streaming;
    /// the stream then only yields [`ReplicationEvent::TimelineEnded`].
    pub async fn start_replication_with(
        &mut self,
        cmd: &StartReplication,
        options: StreamOptions,
    ) -> Result<ReplicationStream<'_>, Error> {
        self.ensure_idle().await?;
        let sql = ReplicationCommand::StartReplication(cmd).to_sql(self.version())?;
        self.conn.proto.send_start_replication(&sql)?;
        let mut pending = None;
        let mut finished = false;
        loop {
            match self.conn.next_event().await? {
                Event::CopyBothStarted => break,
                Event::TimelineEnded {
                    next_tli,
                    next_start,
                } => {
                    pending = Some(ReplicationEvent::TimelineEnded {
                        next_tli,
                        next_start,
                    });
                    break;
                }
                Event::StreamEnded => {
                    finished = true;
                    break;
                }
                Event::Notice(n) => log_notice(&n),
                Event::ParameterStatus { .. } => {}
                other => {
                    return Err(Error::protocol(format!(
                        "unexpected {other:?} in answer to START_REPLICATION"
                    )))
                }
            }
        }
        let status_due = options.status_interval.is_some() && !finished && pending.is_none();
        Ok(ReplicationStream {
            client: self,
            shared: Arc::new(Mutex::new(Shared::default())),
            timer: None,
            status_due,
            received: cmd.start,
            options,
            pending,
            finished,
        })
    }

    /// Sends `Terminate` and closes the socket.
    pub async fn close(mut self) -> Result<(), Error> {
        self.conn.proto.send_terminate();
        self.conn.flush().await?;
        self.conn.socket.shutdown().await?;
        Ok(())
    }
}

fn log_notice(n: &super::DbError) {
    tracing::info!("{}: {}", n.severity, n.message);
}

async fn resolve(host: &HostSpec) -> Result<Vec<Target>, Error> {
    match &host.host {
        Host::Unix(_) => Ok(vec![Target::Unix(host.socket_path().unwrap_or_default())]),
        Host::Tcp { addr: Some(ip), .. } => Ok(vec![Target::Tcp(SocketAddr::new(*ip, host.port))]),
        Host::Tcp { name: Some(n), .. } => {
            let addrs = tokio::net::lookup_host((n.as_str(), host.port))
                .await
                .map_err(|e| Error::Connect {
                    target: describe(host, None),
                    source: io::Error::new(
                        e.kind(),
                        format!("could not translate host name \"{n}\" to address: {e}"),
                    ),
                })?;
            let mut out: Vec<Target> = Vec::new();
            for a in addrs {
                if !out.iter().any(|t| matches!(t, Target::Tcp(x) if *x == a)) {
                    out.push(Target::Tcp(a));
                }
            }
            Ok(out)
        }
        Host::Tcp {
            name: None,
            addr: None,
        } => Ok(vec![Target::Tcp(SocketAddr::new(
            IpAddr::from([127, 0, 0, 1]),
            host.port,
        ))]),
    }
}

/// One address, with libpq's `sslmode` retries.
async fn attempt(
    config: &Config,
    host: &HostSpec,
    target: &Target,
    desc: &str,
    tls: Option<&TlsSetup>,
    sql: bool,
) -> Result<ReplicationClient, Error> {
    let addr = match target {
        Target::Unix(path) => {
            // TLS is never used over Unix-domain sockets.
            let s = UnixStream::connect(path)
                .await
                .map_err(|e| Error::Connect {
                    target: desc.to_owned(),
                    source: e,
                })?;
            return startup(config, host, None, Socket::Unix(s), None, sql).await;
        }
        Target::Tcp(addr) => *addr,
    };
    let tls = match (config.ssl_mode, tls) {
        (SslMode::Disable, _) | (_, None) => return plain(config, host, addr, desc, sql).await,
        (_, Some(t)) => t,
    };
    if config.ssl_negotiation == SslNegotiation::Direct {
        // Only with sslmode require or stricter (checked by the conninfo parser).
        return direct(config, host, addr, desc, tls, sql).await;
    }
    match config.ssl_mode {
        SslMode::Disable => plain(config, host, addr, desc, sql).await,
        SslMode::Allow => match plain(config, host, addr, desc, sql).await {
            // Rejected in plain text (e.g. only hostssl rows): try TLS.
            Err(e) if e.db_error().is_some() => {
                encrypted(config, host, addr, desc, tls, true, sql).await
            }
            r => r,
        },
        SslMode::Prefer => match encrypted(config, host, addr, desc, tls, false, sql).await {
            Ok(c) => Ok(c),
            // TLS refused or failed, or the server rejected the TLS session: try plain text.
            Err(Error::Tls(e)) => {
                tracing::debug!("TLS attempt failed ({e}); retrying without TLS");
                plain(config, host, addr, desc, sql).await
            }
            Err(e) if e.db_error().is_some() => plain(config, host, addr, desc, sql).await,
            Err(e) => Err(e),
        },
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            encrypted(config, host, addr, desc, tls, true, sql).await
        }
    }
}

async fn tcp(addr: SocketAddr, desc: &str) -> Result<TcpStream, Error> {
    let s = TcpStream::connect(addr).await.map_err(|e| Error::Connect {
        target: desc.to_owned(),
        source: e,
    })?;
    // Keepalives are cheap and help detect dead peers during long idle streaming.
    let _ = s.set_nodelay(true);
    Ok(s)
}

async fn plain(
    config: &Config,
    host: &HostSpec,
    addr: SocketAddr,
    desc: &str,
    sql: bool,
) -> Result<ReplicationClient, Error> {
    let s = tcp(addr, desc).await?;
    startup(config, host, Some(addr), Socket::Tcp(s), None, sql).await
}

/// SSLRequest, handshake, startup. If `required`, a server without TLS is an error;
/// otherwise the plain connection continues on the same socket.
async fn encrypted(
    config: &Config,
    host: &HostSpec,
    addr: SocketAddr,
    desc: &str,
    tls: &TlsSetup,
    required: bool,
    sql: bool,
) -> Result<ReplicationClient, Error> {
    let mut s = tcp(addr, desc).await?;
    s.write_all(&super::protocol::ssl_request()).await?;
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer).await.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::Closed
        } else {
            Error::Io(e)
        }
    })?;
    let accepted = match super::protocol::ssl_response(answer[0]) {
        Ok(a) => a,
        Err(e) if !required => return Err(Error::Tls(e.to_string())),
        Err(e) => return Err(e),
    };
    if !accepted {
        if required {
            return Err(Error::TlsNotSupported);
        }
        return startup(config, host, Some(addr), Socket::Tcp(s), None, sql).await;
    }
    let (stream, end_point) = handshake(tls, host, addr, desc, s).await?;
    startup(config, host, Some(addr), stream, Some(end_point), sql).await
}

/// `sslnegotiation=direct` (servers from 17 on): the TLS handshake at once, without an
/// SSLRequest; the server must have chosen ALPN `postgresql`, as libpq requires.
async fn direct(
    config: &Config,
    host: &HostSpec,
    addr: SocketAddr,
    desc: &str,
    tls: &TlsSetup,
    sql: bool,
) -> Result<ReplicationClient, Error> {
    let s = tcp(addr, desc).await?;
    let (stream, end_point) = handshake(tls, host, addr, desc, s).await?;
    let alpn = match &stream {
        Socket::Tls(t) => t.get_ref().1.alpn_protocol().map(<[u8]>::to_vec),
        _ => None,
    };
    if alpn.as_deref() != Some(b"postgresql") {
        return Err(Error::Tls(
            "direct SSL connection was established without ALPN protocol negotiation extension"
                .into(),
        ));
    }
    startup(config, host, Some(addr), stream, Some(end_point), sql).await
}

/// The TLS handshake on `s`: the encrypted socket and the channel-binding hash of the
/// server's certificate.
async fn handshake(
    tls: &TlsSetup,
    host: &HostSpec,
    addr: SocketAddr,
    desc: &str,
    s: TcpStream,
) -> Result<(Socket, Option<Vec<u8>>), Error> {
    let name = tls.server_name(host, addr.ip())?;
    let stream = TlsConnector::from(tls.client_config())
        .connect(name, s)
        .await
        .map_err(|e| Error::Tls(format!("handshake with server {desc} failed: {e}")))?;
    let end_point = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| server_end_point(c));
    Ok((Socket::Tls(Box::new(stream)), end_point))
}

/// Startup and authentication on an open socket. `tls` is `Some(end point hash)` over TLS;
/// `sql` makes an ordinary connection (no `replication` parameter, libpq's default database).
async fn startup(
    config: &Config,
    host: &HostSpec,
    peer: Option<SocketAddr>,
    socket: Socket,
    tls: Option<Option<Vec<u8>>>,
    sql: bool,
) -> Result<ReplicationClient, Error> {
    let default_db = if sql {
        config.user.as_str()
    } else {
        "replication"
    };
    let dbname = config.dbname.clone().unwrap_or_else(|| default_db.into());
    let mut sc = StartupConfig::new(&config.user);
    if sql {
        sc.replication = None;
    }
    sc.database = Some(dbname.clone());
    sc.application_name = config.effective_application_name().map(str::to_owned);
    sc.options = config.options.clone();
    sc.password = config.password_for(host, &dbname).map(String::into_bytes);
    sc.channel_binding = config.channel_binding;
    sc.require_auth = config.require_auth.clone();
    sc.min_protocol_version = config.min_protocol_version;
    sc.max_protocol_version = config.max_protocol_version;
    sc.tls = tls.is_some();
    sc.tls_server_end_point = tls.clone().flatten();
    let proto = Protocol::new(sc)?;
    let mut conn = Connection { socket, proto };
    loop {
        match conn.next_event().await? {
            Event::Connected => break,
            Event::Notice(n) => log_notice(&n),
            Event::ParameterStatus { .. } => {}
            other => {
                return Err(Error::protocol(format!(
                    "unexpected {other:?} during startup"
                )))
            }
        }
    }
    Ok(ReplicationClient {
        conn,
        host: host.clone(),
        peer,
        tls: tls.is_some(),
    })
}

/// How a [`ReplicationStream`] reports progress to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamOptions {
    /// Send a status update at this interval (and one right after streaming starts), as
    /// pg_receivewal's `--status-interval` (default 10 s). `None` sends updates only when
    /// asked to or when a keepalive requests one.
    pub status_interval: Option<Duration>,
    /// Answer keepalives that request a reply with a status update at once (default on).
    /// When off, the caller must answer through a [`FeedbackHandle`], or the server ends the
    /// connection after `wal_sender_timeout`.
    pub reply_to_keepalives: bool,
    /// Report the end of the WAL received so far as the write position (default on), as
    /// pg_receivewal does. When off, only positions set through the [`FeedbackHandle`] are
    /// reported.
    pub report_received_as_written: bool,
}

impl Default for StreamOptions {
    fn default() -> StreamOptions {
        StreamOptions {
            status_interval: Some(Duration::from_secs(10)),
            reply_to_keepalives: true,
            report_received_as_written: true,
        }
    }
}

impl StreamOptions {
    /// Sets the status interval.
    pub fn status_interval(mut self, interval: Option<Duration>) -> StreamOptions {
        self.status_interval = interval;
        self
    }

    /// Sets whether keepalives requesting a reply are answered automatically.
    pub fn reply_to_keepalives(mut self, on: bool) -> StreamOptions {
        self.reply_to_keepalives = on;
        self
    }

    /// Sets whether the received position is reported as written.
    pub fn report_received_as_written(mut self, on: bool) -> StreamOptions {
        self.report_received_as_written = on;
        self
    }
}

/// What a [`ReplicationStream`] yields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicationEvent {
    /// WAL bytes: `start`, `end` and `data` (zero-copy).
    XLogData(XLogData),
    /// A keepalive (already answered if it asked for a reply and automatic replies are on).
    Keepalive(PrimaryKeepalive),
    /// The streamed timeline ended: the server's history continues on `next_tli` from
    /// `next_start`. The stream ends after this, and the client can run further commands,
    /// e.g. `TIMELINE_HISTORY` and `START_REPLICATION` on the next timeline.
    TimelineEnded {
        /// The next timeline.
        next_tli: TimelineId,
        /// The switch point.
        next_start: Lsn,
    },
}

#[derive(Debug, Default)]
struct Shared {
    positions: FeedbackPositions,
    status_requested: bool,
    reply_requested: bool,
    hot_standby: Option<HotStandbyFeedback>,
    stop_requested: bool,
    waker: Option<Waker>,
}

/// A cloneable, thread-safe handle to report progress on a [`ReplicationStream`]: the
/// positions are kept monotonic and sent with the next status update, which the stream
/// sends the next time it is polled (the handle wakes it).
///
/// ```no_run
/// # async fn demo(mut stream: pgwal::replication::ReplicationStream<'_>) {
/// let feedback = stream.feedback();
/// tokio::spawn(async move {
///     // ... after fsyncing WAL up to some position elsewhere:
///     feedback.set_flush(pgwal::Lsn(0x300_0000));
///     feedback.send_status();
/// });
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct FeedbackHandle {
    shared: Arc<Mutex<Shared>>,
}

impl FeedbackHandle {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(mut s: MutexGuard<'_, Shared>) {
        if let Some(w) = s.waker.take() {
            drop(s);
            w.wake();
        }
    }

    /// Raises the reported write position (bytes received and written).
    pub fn set_write(&self, lsn: Lsn) {
        self.lock().positions.set_write(lsn);
    }

    /// Raises the reported flush position (bytes durably stored); a physical slot's
    /// `restart_lsn` follows it.
    pub fn set_flush(&self, lsn: Lsn) {
        self.lock().positions.set_flush(lsn);
    }

    /// Raises the reported apply position.
    pub fn set_apply(&self, lsn: Lsn) {
        self.lock().positions.set_apply(lsn);
    }

    /// The positions set so far.
    pub fn positions(&self) -> FeedbackPositions {
        self.lock().positions
    }

    /// Sends a status update as soon as the stream is polled.
    pub fn send_status(&self) {
        let mut s = self.lock();
        s.status_requested = true;
        FeedbackHandle::wake(s);
    }

    /// Sends a status update asking the server to reply with a keepalive.
    pub fn send_status_requesting_reply(&self) {
        let mut s = self.lock();
        s.status_requested = true;
        s.reply_requested = true;
        FeedbackHandle::wake(s);
    }

    /// Sends hot-standby feedback (its `client_time` is set when sent).
    pub fn send_hot_standby_feedback(&self, feedback: HotStandbyFeedback) {
        let mut s = self.lock();
        s.hot_standby = Some(feedback);
        FeedbackHandle::wake(s);
    }

    /// Ends streaming (CopyDone) as soon as the stream is polled; the stream then yields the
    /// WAL still in flight and ends.
    pub fn stop(&self) {
        let mut s = self.lock();
        s.stop_requested = true;
        FeedbackHandle::wake(s);
    }
}

/// The WAL stream of a `START_REPLICATION` command: a [`Stream`] of [`ReplicationEvent`]s.
///
/// It ends (`None`) once the server has finished the command, after a
/// [`ReplicationEvent::TimelineEnded`] or after [`stop`](Self::stop); the client is then
/// idle and can run further commands. An error ends it too. Dropping it mid-stream is
/// allowed: the client's next command ends streaming and discards the rest.
///
/// Polling is cancellation-safe: no event is lost if a `next()` future is dropped.
pub struct ReplicationStream<'a> {
    client: &'a mut ReplicationClient,
    shared: Arc<Mutex<Shared>>,
    timer: Option<Pin<Box<Sleep>>>,
    status_due: bool,
    received: Lsn,
    options: StreamOptions,
    pending: Option<ReplicationEvent>,
    finished: bool,
}

impl std::fmt::Debug for ReplicationStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationStream")
            .field("received", &self.received)
            .field("options", &self.options)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl ReplicationStream<'_> {
    /// A handle for reporting progress from anywhere.
    pub fn feedback(&self) -> FeedbackHandle {
        FeedbackHandle {
            shared: self.shared.clone(),
        }
    }

    /// The end of the WAL received so far (the start position before any data).
    pub fn received(&self) -> Lsn {
        self.received
    }

    /// Raises the reported write position.
    pub fn set_write(&mut self, lsn: Lsn) {
        self.feedback().set_write(lsn);
    }

    /// Raises the reported flush position.
    pub fn set_flush(&mut self, lsn: Lsn) {
        self.feedback().set_flush(lsn);
    }

    /// Raises the reported apply position.
    pub fn set_apply(&mut self, lsn: Lsn) {
        self.feedback().set_apply(lsn);
    }

    /// Sends a status update now (queues it and writes it out).
    pub async fn send_status(&mut self, reply_requested: bool) -> Result<(), Error> {
        if self.client.conn.proto.can_send_feedback() {
            self.queue_status(reply_requested)?;
        }
        self.client.conn.flush().await
    }

    /// Sends hot-standby feedback now.
    pub async fn send_hot_standby_feedback(
        &mut self,
        mut feedback: HotStandbyFeedback,
    ) -> Result<(), Error> {
        feedback.client_time = PgTimestamp::now();
        self.client
            .conn
            .proto
            .send_hot_standby_feedback(&feedback)?;
        self.client.conn.flush().await
    }

    /// Ends streaming from the client side (CopyDone, sent on the next poll). WAL in flight
    /// is still yielded, then the stream ends.
    pub fn stop(&mut self) {
        self.feedback().stop();
    }

    /// The next event; `None` when the stream has ended. The same as `StreamExt::next`.
    pub async fn next_event(&mut self) -> Option<Result<ReplicationEvent, Error>> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The next event if it is ready without waiting (already received, or readable from
    /// the socket now): `Some` as [`next_event`](Self::next_event) would return it, `None`
    /// if that would wait. Lets a caller gather the WAL messages that arrived together.
    pub async fn try_next_event(&mut self) -> Option<Option<Result<ReplicationEvent, Error>>> {
        poll_fn(|cx| match Pin::new(&mut *self).poll_next(cx) {
            Poll::Ready(ev) => Poll::Ready(Some(ev)),
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }

    fn queue_status(&mut self, reply_requested: bool) -> Result<(), Error> {
        let mut positions = {
            let s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            s.positions
        };
        if self.options.report_received_as_written {
            positions.set_write(self.received);
        }
        let status = positions.status_update(PgTimestamp::now(), reply_requested);
        self.client.conn.proto.send_standby_status(&status)?;
        if let Some(interval) = self.options.status_interval {
            let deadline = Instant::now() + interval;
            match &mut self.timer {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        Ok(())
    }

    /// Applies handle requests and the status timer.
    fn poll_requests(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        let (status, reply, hs, stop) = {
            let mut s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                s.waker = Some(cx.waker().clone());
            }
            (
                mem_take(&mut s.status_requested),
                mem_take(&mut s.reply_requested),
                s.hot_standby.take(),
                mem_take(&mut s.stop_requested),
            )
        };
        if !self.client.conn.proto.can_send_feedback() {
            return Ok(());
        }
        let mut due = status || self.status_due;
        if let Some(t) = &mut self.timer {
            if t.as_mut().poll(cx).is_ready() {
                due = true;
            }
        }
        if due {
            self.status_due = false;
            self.queue_status(reply)?;
            // Register the re-armed timer with this task.
            if let Some(t) = &mut self.timer {
                let _ = t.as_mut().poll(cx);
            }
        }
        if let Some(mut h) = hs {
            h.client_time = PgTimestamp::now();
            self.client.conn.proto.send_hot_standby_feedback(&h)?;
        }
        if stop {
            self.client.conn.proto.send_copy_done()?;
        }
        Ok(())
    }
}

fn mem_take(b: &mut bool) -> bool {
    std::mem::take(b)
}

impl Stream for ReplicationStream<'_> {
    type Item = Result<ReplicationEvent, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(ev) = this.pending.take() {
            this.finished = true;
            return Poll::Ready(Some(Ok(ev)));
        }
        if this.finished {
            return Poll::Ready(None);
        }
        loop {
            if let Err(e) = this.poll_requests(cx) {
                this.finished = true;
                return Poll::Ready(Some(Err(e)));
            }
            let ev = match this.client.conn.poll_event(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Ok(ev)) => ev,
            };
            match ev {
                Event::XLogData(x) => {
                    this.received = this.received.max(x.end);
                    return Poll::Ready(Some(Ok(ReplicationEvent::XLogData(x))));
                }
                Event::Keepalive(k) => {
                    if k.reply_requested
                        && this.options.reply_to_keepalives
                        && this.client.conn.proto.can_send_feedback()
                    {
                        if let Err(e) = this.queue_status(false) {
                            this.finished = true;
                            return Poll::Ready(Some(Err(e)));
                        }
                        // Best effort now; the rest goes out on the next poll.
                        if let Poll::Ready(Err(e)) = this.client.conn.poll_write_out(cx) {
                            this.finished = true;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                    return Poll::Ready(Some(Ok(ReplicationEvent::Keepalive(k))));
                }
                Event::TimelineEnded {
                    next_tli,
                    next_start,
                } => {
                    this.finished = true;
                    return Poll::Ready(Some(Ok(ReplicationEvent::TimelineEnded {
                        next_tli,
                        next_start,
                    })));
                }
                Event::StreamEnded => {
                    this.finished = true;
                    return Poll::Ready(None);
                }
                Event::Notice(n) => log_notice(&n),
                Event::ParameterStatus { .. } => {}
                other => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(Error::protocol(format!(
                        "unexpected {other:?} while streaming"
                    )))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
