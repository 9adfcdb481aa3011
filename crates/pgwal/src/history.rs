//! Timeline history files (`TTTTTTTT.history`): which timeline forked from which, and where.
//!
//! Each line is `parentTLI<TAB>switchpoint<TAB>reason`; blank lines and `#` comments are
//! ignored (`readTimeLineHistory()` in `timeline.c`). A new history file repeats its parent's
//! lines and appends one.

use std::fmt;

use crate::lsn::Lsn;
use crate::segment::TimelineId;

/// One line of a history file: timeline `tli` ended at `switchpoint` (exclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The timeline that ended.
    pub tli: TimelineId,
    /// The first LSN that belongs to the next timeline.
    pub switchpoint: Lsn,
    /// Free text PostgreSQL records (e.g. `no recovery target specified`).
    pub reason: String,
}

/// A parsed timeline history file.
///
/// ```
/// use pgwal::{TimelineHistory, TimelineId, Lsn};
/// let h = TimelineHistory::parse(b"1\t0/3000000\tno recovery target specified\n").unwrap();
/// assert_eq!(h.entries[0].tli, TimelineId(1));
/// assert_eq!(h.entries[0].switchpoint, Lsn(0x300_0000));
/// assert_eq!(h.timeline_of(Lsn(0x2FF_FFFF), TimelineId(2)), TimelineId(1));
/// assert_eq!(h.timeline_of(Lsn(0x300_0000), TimelineId(2)), TimelineId(2));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TimelineHistory {
    /// Entries in file order: ancestors first, timelines increasing.
    pub entries: Vec<HistoryEntry>,
}

/// A history file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A line did not start with a timeline id.
    #[error("syntax error in history file line {line}: {text:?}: expected a numeric timeline ID")]
    BadTimeline {
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
    },
    /// A line had no valid switch point.
    #[error("syntax error in history file line {line}: {text:?}: expected a write-ahead log switchpoint location")]
    BadSwitchpoint {
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
    },
    /// Timeline ids were not strictly increasing.
    #[error(
        "invalid data in history file line {line}: timeline IDs must be in increasing sequence"
    )]
    NotIncreasing {
        /// 1-based line number.
        line: usize,
    },
    /// The file is not UTF-8 text.
    #[error("history file is not valid text")]
    NotText,
}

impl TimelineHistory {
    /// Parses the content of a history file.
    pub fn parse(content: &[u8]) -> Result<TimelineHistory, HistoryError> {
        let text = std::str::from_utf8(content).map_err(|_| HistoryError::NotText)?;
        let mut entries: Vec<HistoryEntry> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim_start();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let mut fields = l.splitn(3, ['\t', ' ']);
            let tli = fields
                .next()
                .and_then(|f| f.parse::<u32>().ok())
                .filter(|&t| t > 0)
                .ok_or_else(|| HistoryError::BadTimeline {
                    line,
                    text: raw.to_owned(),
                })?;
            let rest = fields.next().unwrap_or("");
            let switchpoint: Lsn =
                rest.trim()
                    .parse()
                    .map_err(|_| HistoryError::BadSwitchpoint {
                        line,
                        text: raw.to_owned(),
                    })?;
            let reason = fields.next().unwrap_or("").trim().to_owned();
            if entries.last().is_some_and(|e| e.tli.0 >= tli) {
                return Err(HistoryError::NotIncreasing { line });
            }
            entries.push(HistoryEntry {
                tli: TimelineId(tli),
                switchpoint,
                reason,
            });
        }
        Ok(TimelineHistory { entries })
    }

    /// The timeline that `lsn` belongs to, for a history whose newest timeline is `newest`
    /// (`tliOfPointInHistory`).
    pub fn timeline_of(&self, lsn: Lsn, newest: TimelineId) -> TimelineId {
        for e in &self.entries {
            if lsn < e.switchpoint {
                return e.tli;
            }
        }
        newest
    }

    /// The switch point at which timeline `tli` ended, if it is an ancestor in this history.
    pub fn switchpoint_of(&self, tli: TimelineId) -> Option<Lsn> {
        self.entries
            .iter()
            .find(|e| e.tli == tli)
            .map(|e| e.switchpoint)
    }

    /// The history of the child timeline forked from the newest timeline here at `switchpoint`,
    /// with `reason`, in the form PostgreSQL writes (`writeTimeLineHistory()`).
    pub fn child(&self, parent: TimelineId, switchpoint: Lsn, reason: &str) -> TimelineHistory {
        let mut h = self.clone();
        h.entries.push(HistoryEntry {
            tli: parent,
            switchpoint,
            reason: reason.to_owned(),
        });
        h
    }
}

impl fmt::Display for TimelineHistory {
    /// Writes the file content as PostgreSQL does: entries after the first are preceded by an
    /// empty line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "{}\t{}\t{}", e.tli, e.switchpoint, e.reason)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_three_timelines_as_postgres_writes_them() {
        let text =
            "1\t0/3000000\tno recovery target specified\n\n2\t0/50000A0\tbefore 2026-01-01\n";
        let h = TimelineHistory::parse(text.as_bytes()).unwrap();
        assert_eq!(h.entries.len(), 2);
        assert_eq!(h.to_string(), text);
        assert_eq!(h.timeline_of(Lsn(0x500_0000), TimelineId(3)), TimelineId(2));
        assert_eq!(h.timeline_of(Lsn(0x600_0000), TimelineId(3)), TimelineId(3));
        assert_eq!(h.switchpoint_of(TimelineId(2)), Some(Lsn(0x500_00A0)));
        let c = TimelineHistory::default().child(TimelineId(1), Lsn(0x300_0000), "r");
        assert_eq!(c.to_string(), "1\t0/3000000\tr\n");
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            TimelineHistory::parse(b"x\t0/0\n"),
            Err(HistoryError::BadTimeline { line: 1, .. })
        ));
        assert!(matches!(
            TimelineHistory::parse(b"# c\n1\tzz\n"),
            Err(HistoryError::BadSwitchpoint { line: 2, .. })
        ));
        assert!(matches!(
            TimelineHistory::parse(b"2\t0/1\n1\t0/2\n"),
            Err(HistoryError::NotIncreasing { line: 2 })
        ));
        assert!(TimelineHistory::parse(&[0xff, 0xfe]).is_err());
    }
}
