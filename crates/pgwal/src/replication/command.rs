//! Replication commands: their text (chosen by server version, names validated) and their
//! typed results.
//!
//! Commands are sent as simple queries on a `replication=true` connection. Every name that
//! is pasted into a command is validated first ([`SlotName`], [`ReplicationCommand::Show`]
//! parameter names), so no input can change the command's meaning.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use super::result::{ResultSet, Row};
use super::Error;
use crate::{Lsn, TimelineHistory, TimelineId};

/// A server version as libpq's `PQserverVersion()` computes it from the `server_version`
/// parameter: `150018` for 15.18, `180000` for `18beta1`.
///
/// ```
/// use pgwal::replication::ServerVersion;
/// let v = ServerVersion::parse("15.18 (Debian 15.18-0+deb12u1)").unwrap();
/// assert_eq!(v.num(), 150018);
/// assert_eq!(v.major(), 15);
/// assert_eq!(ServerVersion::parse("18beta1").unwrap().num(), 180000);
/// assert_eq!(ServerVersion::parse("9.6.24").unwrap().num(), 90624);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion(pub u32);

impl ServerVersion {
    /// Parses a `server_version` value (`sscanf("%d.%d.%d")` semantics).
    pub fn parse(text: &str) -> Option<ServerVersion> {
        let mut nums = [0u32; 3];
        let mut count = 0;
        let mut rest = text;
        while count < 3 {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                break;
            }
            nums[count] = rest[..digits].parse().ok()?;
            count += 1;
            rest = &rest[digits..];
            match rest.strip_prefix('.') {
                Some(r) if count < 3 => rest = r,
                _ => break,
            }
        }
        let [maj, min, rev] = nums;
        let num = match count {
            3 => (100 * maj + min) * 100 + rev,
            2 if maj >= 10 => 100 * 100 * maj + min,
            2 => (100 * maj + min) * 100,
            1 => 100 * 100 * maj,
            _ => return None,
        };
        Some(ServerVersion(num))
    }

    /// The numeric form (`server_version_num`).
    pub fn num(self) -> u32 {
        self.0
    }

    /// The major version: 15 for 15.x; 906 for 9.6.x.
    pub fn major(self) -> u32 {
        if self.0 >= 100_000 {
            self.0 / 10_000
        } else {
            self.0 / 100
        }
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 100_000 {
            write!(f, "{}.{}", self.0 / 10_000, self.0 % 10_000)
        } else {
            write!(
                f,
                "{}.{}.{}",
                self.0 / 10_000,
                self.0 / 100 % 100,
                self.0 % 100
            )
        }
    }
}

/// The longest slot name (`NAMEDATALEN - 1`).
pub const MAX_SLOT_NAME_LEN: usize = 63;

/// A replication slot name that follows PostgreSQL's rules
/// (`ReplicationSlotValidateName()`): 1 to 63 characters from `[a-z0-9_]`.
///
/// ```
/// use pgwal::replication::SlotName;
/// let s = SlotName::new("archiver_1").unwrap();
/// assert_eq!(s.as_str(), "archiver_1");
/// assert!(SlotName::new("").is_err());
/// assert!(SlotName::new("Archiver").is_err());
/// assert!(SlotName::new("x\" PHYSICAL; DROP").is_err());
/// assert!(SlotName::new("a".repeat(64)).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotName(String);

impl SlotName {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<SlotName, Error> {
        let name = name.into();
        if name.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "replication slot name \"{name}\" is too short"
            )));
        }
        if name.len() > MAX_SLOT_NAME_LEN {
            return Err(Error::InvalidArgument(format!(
                "replication slot name \"{name}\" is too long"
            )));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(Error::InvalidArgument(format!(
                "replication slot name \"{}\" contains invalid character; replication slot \
                 names may only contain lower case letters, numbers, and the underscore character",
                name.escape_debug()
            )));
        }
        Ok(SlotName(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SlotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SlotName {
    type Err = Error;

    fn from_str(s: &str) -> Result<SlotName, Error> {
        SlotName::new(s)
    }
}

impl AsRef<str> for SlotName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Options of `CREATE_REPLICATION_SLOT ... PHYSICAL`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreateSlotOptions {
    /// The slot disappears when the connection ends or on error.
    pub temporary: bool,
    /// Reserve WAL at once: the slot's `restart_lsn` is set at creation, so WAL from then on
    /// is kept (without it, nothing is kept until the first status update).
    pub reserve_wal: bool,
}

/// The arguments of `START_REPLICATION [SLOT "s"] PHYSICAL X/X [TIMELINE n]`.
///
/// ```
/// use pgwal::replication::{ReplicationCommand, ServerVersion, SlotName, StartReplication};
/// use pgwal::{Lsn, TimelineId};
/// let cmd = StartReplication::new(Lsn(0x300_0000))
///     .slot(SlotName::new("arch").unwrap())
///     .timeline(TimelineId(2));
/// assert_eq!(
///     ReplicationCommand::StartReplication(&cmd).to_sql(ServerVersion(160000)).unwrap(),
///     "START_REPLICATION SLOT \"arch\" PHYSICAL 0/3000000 TIMELINE 2"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartReplication {
    /// The physical slot to stream from (its `restart_lsn` follows the flush position).
    pub slot: Option<SlotName>,
    /// Where to start; pg_receivewal always starts at a segment boundary.
    pub start: Lsn,
    /// The timeline to stream; the server's current one if `None`.
    pub timeline: Option<TimelineId>,
}

impl StartReplication {
    /// Streams from `start` on the server's current timeline, without a slot.
    pub fn new(start: Lsn) -> StartReplication {
        StartReplication {
            slot: None,
            start,
            timeline: None,
        }
    }

    /// Uses a slot.
    pub fn slot(mut self, slot: SlotName) -> StartReplication {
        self.slot = Some(slot);
        self
    }

    /// Streams a given timeline.
    pub fn timeline(mut self, tli: TimelineId) -> StartReplication {
        self.timeline = Some(tli);
        self
    }
}

/// A replication command, rendered for a given server version by
/// [`to_sql`](ReplicationCommand::to_sql).
///
/// ```
/// use pgwal::replication::{CreateSlotOptions, ReplicationCommand, ServerVersion, SlotName};
/// let name = SlotName::new("s1").unwrap();
/// let opts = CreateSlotOptions { temporary: false, reserve_wal: true };
/// let cmd = ReplicationCommand::CreatePhysicalSlot { name: &name, options: opts };
/// assert_eq!(cmd.to_sql(ServerVersion(140010)).unwrap(),
///            "CREATE_REPLICATION_SLOT \"s1\" PHYSICAL RESERVE_WAL");
/// assert_eq!(cmd.to_sql(ServerVersion(150000)).unwrap(),
///            "CREATE_REPLICATION_SLOT \"s1\" PHYSICAL (RESERVE_WAL)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicationCommand<'a> {
    /// `IDENTIFY_SYSTEM`
    IdentifySystem,
    /// `SHOW name` (the name must look like a configuration parameter).
    Show(&'a str),
    /// `TIMELINE_HISTORY tli`
    TimelineHistory(TimelineId),
    /// `CREATE_REPLICATION_SLOT "name" [TEMPORARY] PHYSICAL [RESERVE_WAL]`
    CreatePhysicalSlot {
        /// The slot.
        name: &'a SlotName,
        /// Options.
        options: CreateSlotOptions,
    },
    /// `DROP_REPLICATION_SLOT "name" [WAIT]`
    DropSlot {
        /// The slot.
        name: &'a SlotName,
        /// Wait for the slot to become inactive instead of failing.
        wait: bool,
    },
    /// `READ_REPLICATION_SLOT name` (PostgreSQL 15+).
    ReadReplicationSlot(&'a SlotName),
    /// `START_REPLICATION ...`
    StartReplication(&'a StartReplication),
}

impl ReplicationCommand<'_> {
    /// The command keyword, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            ReplicationCommand::IdentifySystem => "IDENTIFY_SYSTEM",
            ReplicationCommand::Show(_) => "SHOW",
            ReplicationCommand::TimelineHistory(_) => "TIMELINE_HISTORY",
            ReplicationCommand::CreatePhysicalSlot { .. } => "CREATE_REPLICATION_SLOT",
            ReplicationCommand::DropSlot { .. } => "DROP_REPLICATION_SLOT",
            ReplicationCommand::ReadReplicationSlot(_) => "READ_REPLICATION_SLOT",
            ReplicationCommand::StartReplication(_) => "START_REPLICATION",
        }
    }

    /// The command text for a server of version `server`.
    pub fn to_sql(&self, server: ServerVersion) -> Result<String, Error> {
        Ok(match self {
            ReplicationCommand::IdentifySystem => "IDENTIFY_SYSTEM".to_owned(),
            ReplicationCommand::Show(name) => {
                validate_parameter_name(name)?;
                format!("SHOW {name}")
            }
            ReplicationCommand::TimelineHistory(tli) => format!("TIMELINE_HISTORY {}", tli.0),
            ReplicationCommand::CreatePhysicalSlot { name, options } => {
                let mut s = format!("CREATE_REPLICATION_SLOT \"{}\"", name.as_str());
                if options.temporary {
                    s.push_str(" TEMPORARY");
                }
                s.push_str(" PHYSICAL");
                if options.reserve_wal {
                    if server.num() >= 150_000 {
                        s.push_str(" (RESERVE_WAL)");
                    } else {
                        s.push_str(" RESERVE_WAL");
                    }
                }
                s
            }
            ReplicationCommand::DropSlot { name, wait } => {
                let mut s = format!("DROP_REPLICATION_SLOT \"{}\"", name.as_str());
                if *wait {
                    s.push_str(" WAIT");
                }
                s
            }
            ReplicationCommand::ReadReplicationSlot(name) => {
                if server.num() < 150_000 {
                    return Err(Error::UnsupportedByServer {
                        command: "READ_REPLICATION_SLOT",
                        required: 15,
                        server: server.to_string(),
                    });
                }
                // Sent unquoted, as pg_receivewal does; validated names need no quoting.
                format!("READ_REPLICATION_SLOT {}", name.as_str())
            }
            ReplicationCommand::StartReplication(cmd) => {
                let mut s = String::from("START_REPLICATION ");
                if let Some(slot) = &cmd.slot {
                    s.push_str(&format!("SLOT \"{}\" ", slot.as_str()));
                }
                s.push_str(&format!("PHYSICAL {}", cmd.start));
                if let Some(tli) = cmd.timeline {
                    s.push_str(&format!(" TIMELINE {}", tli.0));
                }
                s
            }
        })
    }
}

/// Checks that `name` is a plain (possibly dotted) configuration parameter name.
fn validate_parameter_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.split('.').all(|part| {
            let mut b = part.bytes();
            matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
                && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid configuration parameter name \"{}\"",
            name.escape_debug()
        )))
    }
}

/// The one data row of a command that returns exactly one row with at least `min_cols`
/// columns.
pub(crate) fn single_row<'r>(
    results: &'r [ResultSet],
    command: &'static str,
    min_cols: usize,
) -> Result<&'r Row, Error> {
    let set = results
        .iter()
        .find(|r| !r.columns.is_empty())
        .ok_or_else(|| Error::result(command, "no result set"))?;
    if set.rows.len() != 1 || set.columns.len() < min_cols {
        return Err(Error::result(
            command,
            format!(
                "got {} rows and {} fields, expected 1 rows and {} or more fields",
                set.rows.len(),
                set.columns.len(),
                min_cols
            ),
        ));
    }
    Ok(&set.rows[0])
}

fn text<'r>(row: &'r Row, i: usize, command: &'static str) -> Result<Option<&'r str>, Error> {
    row.get_str(i)
        .map_err(|_| Error::result(command, format!("column {i} is not valid UTF-8")))
}

fn required<'r>(row: &'r Row, i: usize, command: &'static str) -> Result<&'r str, Error> {
    text(row, i, command)?.ok_or_else(|| Error::result(command, format!("column {i} is NULL")))
}

fn parse_lsn(s: &str, command: &'static str) -> Result<Lsn, Error> {
    s.parse::<Lsn>()
        .map_err(|_| Error::result(command, format!("could not parse WAL location \"{s}\"")))
}

fn parse_tli(s: &str, command: &'static str) -> Result<TimelineId, Error> {
    // int4 up to PostgreSQL 15, int8 from 16: parse the text either way.
    match s.trim().parse::<u64>() {
        Ok(v) if v >= 1 && v <= u64::from(u32::MAX) => Ok(TimelineId(v as u32)),
        _ => Err(Error::result(command, format!("invalid timeline \"{s}\""))),
    }
}

/// The result of `IDENTIFY_SYSTEM`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentifySystem {
    /// The cluster's system identifier (`pg_control_system().system_identifier`).
    pub system_id: u64,
    /// The server's current timeline.
    pub timeline: TimelineId,
    /// The server's current WAL flush position (on a standby: the replay position).
    pub xlogpos: Lsn,
    /// The database, for a logical replication connection; `None` for physical ones.
    pub dbname: Option<String>,
}

impl IdentifySystem {
    /// Reads the command's result.
    pub fn from_results(results: &[ResultSet]) -> Result<IdentifySystem, Error> {
        const C: &str = "IDENTIFY_SYSTEM";
        let row = single_row(results, C, 3)?;
        let sysid = required(row, 0, C)?;
        let system_id = sysid
            .parse::<u64>()
            .map_err(|_| Error::result(C, format!("invalid system identifier \"{sysid}\"")))?;
        let timeline = parse_tli(required(row, 1, C)?, C)?;
        let xlogpos = parse_lsn(required(row, 2, C)?, C)?;
        let dbname = if row.len() > 3 {
            text(row, 3, C)?.map(str::to_owned)
        } else {
            None
        };
        Ok(IdentifySystem {
            system_id,
            timeline,
            xlogpos,
            dbname,
        })
    }
}

/// The result of `TIMELINE_HISTORY`: the history file's name and bytes, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineHistoryFile {
    /// The file name, `TTTTTTTT.history`.
    pub filename: String,
    /// The file's bytes, exactly as on the server.
    pub content: Bytes,
    /// The parsed content.
    pub history: TimelineHistory,
}

impl TimelineHistoryFile {
    /// Reads the command's result, checking the file name matches `tli`.
    pub fn from_results(
        tli: TimelineId,
        results: &[ResultSet],
    ) -> Result<TimelineHistoryFile, Error> {
        const C: &str = "TIMELINE_HISTORY";
        let row = single_row(results, C, 2)?;
        let filename = required(row, 0, C)?.to_owned();
        let expected = format!("{:08X}.history", tli.0);
        if filename != expected {
            return Err(Error::result(
                C,
                format!(
                    "server reported unexpected history file name for timeline {}: {filename}",
                    tli.0
                ),
            ));
        }
        // The content is sent raw (BYTEA OID in 13.1, TEXT from 14): no decoding.
        let content = row
            .get_bytes(1)
            .cloned()
            .ok_or_else(|| Error::result(C, "history content is NULL"))?;
        let history = TimelineHistory::parse(&content)
            .map_err(|e| Error::result(C, format!("invalid history file: {e}")))?;
        Ok(TimelineHistoryFile {
            filename,
            content,
            history,
        })
    }
}

/// The result of `CREATE_REPLICATION_SLOT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedSlot {
    /// The slot's name.
    pub slot_name: String,
    /// The `consistent_point` column (`0/0` for physical slots).
    pub consistent_point: Option<Lsn>,
    /// The exported snapshot (logical slots only).
    pub snapshot_name: Option<String>,
    /// The output plugin (logical slots only).
    pub output_plugin: Option<String>,
}

impl CreatedSlot {
    /// Reads the command's result.
    pub fn from_results(results: &[ResultSet]) -> Result<CreatedSlot, Error> {
        const C: &str = "CREATE_REPLICATION_SLOT";
        let row = single_row(results, C, 4)?;
        Ok(CreatedSlot {
            slot_name: required(row, 0, C)?.to_owned(),
            consistent_point: text(row, 1, C)?.map(|s| parse_lsn(s, C)).transpose()?,
            snapshot_name: text(row, 2, C)?.map(str::to_owned),
            output_plugin: text(row, 3, C)?.map(str::to_owned),
        })
    }
}

/// The result of `READ_REPLICATION_SLOT` (PostgreSQL 15+). A slot that does not exist gives
/// all `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    /// `physical`, or `None` if the slot does not exist.
    pub slot_type: Option<String>,
    /// Where the slot keeps WAL from; `None` until WAL is reserved.
    pub restart_lsn: Option<Lsn>,
    /// The timeline of `restart_lsn`.
    pub restart_tli: Option<TimelineId>,
}

impl SlotInfo {
    /// Reads the command's result.
    pub fn from_results(results: &[ResultSet]) -> Result<SlotInfo, Error> {
        const C: &str = "READ_REPLICATION_SLOT";
        let row = single_row(results, C, 3)?;
        Ok(SlotInfo {
            slot_type: text(row, 0, C)?.map(str::to_owned),
            restart_lsn: text(row, 1, C)?.map(|s| parse_lsn(s, C)).transpose()?,
            restart_tli: text(row, 2, C)?.map(|s| parse_tli(s, C)).transpose()?,
        })
    }

    /// True if the slot exists.
    pub fn exists(&self) -> bool {
        self.slot_type.is_some()
    }
}

/// Where streaming continues after the end of a historic timeline: the result set the server
/// sends after ending COPY (`next_tli`, `next_tli_startpos`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimelineSwitch {
    /// The next timeline.
    pub next_tli: TimelineId,
    /// Where the next timeline starts (the switch point).
    pub next_start: Lsn,
}

impl TimelineSwitch {
    /// Reads the result set.
    pub fn from_results(results: &[ResultSet]) -> Result<TimelineSwitch, Error> {
        const C: &str = "START_REPLICATION";
        let row = single_row(results, C, 2)?;
        Ok(TimelineSwitch {
            next_tli: parse_tli(required(row, 0, C)?, C)?,
            next_start: parse_lsn(required(row, 1, C)?, C)?,
        })
    }
}

/// The single value of a `SHOW` result.
pub(crate) fn show_value(results: &[ResultSet]) -> Result<String, Error> {
    let row = single_row(results, "SHOW", 1)?;
    Ok(required(row, 0, "SHOW")?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::result::Column;

    fn set(cols: &[&str], rows: &[&[Option<&str>]]) -> Vec<ResultSet> {
        vec![ResultSet {
            columns: cols
                .iter()
                .map(|c| Column {
                    name: (*c).to_owned(),
                    type_oid: 25,
                })
                .collect(),
            rows: rows
                .iter()
                .map(|r| {
                    Row::new(
                        r.iter()
                            .map(|v| v.map(|v| Bytes::copy_from_slice(v.as_bytes())))
                            .collect(),
                    )
                })
                .collect(),
            tag: Some("SELECT".into()),
        }]
    }

    #[test]
    fn server_versions() {
        let v = |s: &str| ServerVersion::parse(s).map(ServerVersion::num);
        assert_eq!(v("13.23"), Some(130023));
        assert_eq!(v("14.1"), Some(140001));
        assert_eq!(v("15.18 (Debian 15.18-0+deb12u1)"), Some(150018));
        assert_eq!(v("18.6"), Some(180006));
        assert_eq!(v("17devel"), Some(170000));
        assert_eq!(v("9.6.24"), Some(90624));
        assert_eq!(v("9.6devel"), Some(90600));
        assert_eq!(v("devel"), None);
        assert_eq!(v(""), None);
        assert_eq!(ServerVersion(150018).major(), 15);
        assert_eq!(ServerVersion(90624).major(), 906);
        assert_eq!(ServerVersion(150018).to_string(), "15.18");
        assert_eq!(ServerVersion(90624).to_string(), "9.6.24");
    }

    #[test]
    fn slot_names() {
        assert!(SlotName::new("a").is_ok());
        assert!(SlotName::new("a".repeat(63)).is_ok());
        assert!(SlotName::new("a".repeat(64)).is_err());
        for bad in ["", "A", "a-b", "a b", "a\"b", "é", "a;b", "a\0"] {
            assert!(SlotName::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!("s_1".parse::<SlotName>().unwrap().to_string(), "s_1");
        let e = SlotName::new("Bad").unwrap_err();
        assert!(e.to_string().contains("contains invalid character"), "{e}");
    }

    #[test]
    fn command_text() {
        let v14 = ServerVersion(140005);
        let v15 = ServerVersion(150000);
        let s = SlotName::new("s").unwrap();
        let sql = |c: ReplicationCommand<'_>, v| c.to_sql(v).unwrap();
        assert_eq!(
            sql(ReplicationCommand::IdentifySystem, v14),
            "IDENTIFY_SYSTEM"
        );
        assert_eq!(
            sql(ReplicationCommand::Show("wal_segment_size"), v14),
            "SHOW wal_segment_size"
        );
        assert_eq!(
            sql(ReplicationCommand::Show("pg_stat_statements.max"), v14),
            "SHOW pg_stat_statements.max"
        );
        for bad in ["", "a b", "x;DROP", "1a", "a.", "\"a\""] {
            assert!(
                ReplicationCommand::Show(bad).to_sql(v14).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            sql(ReplicationCommand::TimelineHistory(TimelineId(10)), v14),
            "TIMELINE_HISTORY 10"
        );
        let create = |temporary, reserve_wal| ReplicationCommand::CreatePhysicalSlot {
            name: &s,
            options: CreateSlotOptions {
                temporary,
                reserve_wal,
            },
        };
        assert_eq!(
            sql(create(false, false), v14),
            "CREATE_REPLICATION_SLOT \"s\" PHYSICAL"
        );
        assert_eq!(
            sql(create(false, false), v15),
            "CREATE_REPLICATION_SLOT \"s\" PHYSICAL"
        );
        assert_eq!(
            sql(create(true, true), v14),
            "CREATE_REPLICATION_SLOT \"s\" TEMPORARY PHYSICAL RESERVE_WAL"
        );
        assert_eq!(
            sql(create(true, true), v15),
            "CREATE_REPLICATION_SLOT \"s\" TEMPORARY PHYSICAL (RESERVE_WAL)"
        );
        assert_eq!(
            sql(
                ReplicationCommand::DropSlot {
                    name: &s,
                    wait: false
                },
                v14
            ),
            "DROP_REPLICATION_SLOT \"s\""
        );
        assert_eq!(
            sql(
                ReplicationCommand::DropSlot {
                    name: &s,
                    wait: true
                },
                v14
            ),
            "DROP_REPLICATION_SLOT \"s\" WAIT"
        );
        assert_eq!(
            sql(ReplicationCommand::ReadReplicationSlot(&s), v15),
            "READ_REPLICATION_SLOT s"
        );
        let e = ReplicationCommand::ReadReplicationSlot(&s)
            .to_sql(v14)
            .unwrap_err();
        assert!(matches!(e, Error::UnsupportedByServer { required: 15, .. }));
        let start = StartReplication::new(Lsn(0x1_0000_0000));
        assert_eq!(
            sql(ReplicationCommand::StartReplication(&start), v14),
            "START_REPLICATION PHYSICAL 1/0"
        );
        assert_eq!(ReplicationCommand::IdentifySystem.name(), "IDENTIFY_SYSTEM");
    }

    #[test]
    fn identify_system_results() {
        // 13–15 send timeline as int4, 16+ as int8; both arrive as text.
        let r = set(
            &["systemid", "timeline", "xlogpos", "dbname"],
            &[&[
                Some("7710773612060841542"),
                Some("1"),
                Some("0/326D178"),
                None,
            ]],
        );
        assert_eq!(
            IdentifySystem::from_results(&r).unwrap(),
            IdentifySystem {
                system_id: 7710773612060841542,
                timeline: TimelineId(1),
                xlogpos: Lsn(0x326_D178),
                dbname: None
            }
        );
        let r = set(
            &["systemid", "timeline", "xlogpos", "dbname"],
            &[&[Some("1"), Some("4294967295"), Some("1/0"), Some("db")]],
        );
        let i = IdentifySystem::from_results(&r).unwrap();
        assert_eq!(i.timeline, TimelineId(u32::MAX));
        assert_eq!(i.dbname.as_deref(), Some("db"));
        for bad in [
            set(&["a", "b", "c"], &[&[Some("x"), Some("1"), Some("0/0")]]),
            set(&["a", "b", "c"], &[&[Some("1"), Some("0"), Some("0/0")]]),
            set(
                &["a", "b", "c"],
                &[&[Some("1"), Some("4294967296"), Some("0/0")]],
            ),
            set(&["a", "b", "c"], &[&[Some("1"), Some("1"), Some("00")]]),
            set(&["a", "b", "c"], &[&[Some("1"), None, Some("0/0")]]),
            set(&["a", "b"], &[&[Some("1"), Some("1")]]),
            set(&["a", "b", "c"], &[]),
            vec![],
        ] {
            assert!(IdentifySystem::from_results(&bad).is_err());
        }
    }

    #[test]
    fn timeline_history_results() {
        let content = "1\t0/3000000\tno recovery target specified\n";
        let r = set(
            &["filename", "content"],
            &[&[Some("00000002.history"), Some(content)]],
        );
        let h = TimelineHistoryFile::from_results(TimelineId(2), &r).unwrap();
        assert_eq!(h.filename, "00000002.history");
        assert_eq!(&h.content[..], content.as_bytes());
        assert_eq!(h.history.entries[0].switchpoint, Lsn(0x300_0000));
        let e = TimelineHistoryFile::from_results(TimelineId(3), &r).unwrap_err();
        assert!(e
            .to_string()
            .contains("unexpected history file name for timeline 3"));
        let r = set(
            &["filename", "content"],
            &[&[Some("0000000A.history"), Some("x\n")]],
        );
        assert!(TimelineHistoryFile::from_results(TimelineId(10), &r).is_err());
    }

    #[test]
    fn slot_results() {
        let r = set(
            &[
                "slot_name",
                "consistent_point",
                "snapshot_name",
                "output_plugin",
            ],
            &[&[Some("s1"), Some("0/0"), None, None]],
        );
        assert_eq!(
            CreatedSlot::from_results(&r).unwrap(),
            CreatedSlot {
                slot_name: "s1".into(),
                consistent_point: Some(Lsn(0)),
                snapshot_name: None,
                output_plugin: None
            }
        );
        let r = set(
            &["slot_type", "restart_lsn", "restart_tli"],
            &[&[Some("physical"), Some("0/326D140"), Some("1")]],
        );
        let i = SlotInfo::from_results(&r).unwrap();
        assert!(i.exists());
        assert_eq!(i.restart_lsn, Some(Lsn(0x326_D140)));
        assert_eq!(i.restart_tli, Some(TimelineId(1)));
        let r = set(
            &["slot_type", "restart_lsn", "restart_tli"],
            &[&[None, None, None]],
        );
        let i = SlotInfo::from_results(&r).unwrap();
        assert!(!i.exists());
        assert_eq!(i.restart_lsn, None);
    }

    #[test]
    fn timeline_switch_and_show() {
        let r = set(
            &["next_tli", "next_tli_startpos"],
            &[&[Some("3"), Some("0/5000A8")]],
        );
        assert_eq!(
            TimelineSwitch::from_results(&r).unwrap(),
            TimelineSwitch {
                next_tli: TimelineId(3),
                next_start: Lsn(0x50_00A8)
            }
        );
        let r = set(&["wal_segment_size"], &[&[Some("16MB")]]);
        assert_eq!(show_value(&r).unwrap(), "16MB");
    }
}
