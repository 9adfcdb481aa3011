//! PostgreSQL major versions, told apart by the WAL page magic.

use std::fmt;

/// A PostgreSQL major version whose WAL pgwal reads, chosen by `XLOG_PAGE_MAGIC`.
///
/// ```
/// use pgwal::wal::PgVersion;
/// assert_eq!(PgVersion::from_magic(0xD110), Some(PgVersion::V15));
/// assert_eq!(PgVersion::V18.magic(), 0xD118);
/// assert_eq!(PgVersion::from_magic(0xD122), Some(PgVersion::V19));
/// assert_eq!(PgVersion::from_magic(0xD123), None);
/// assert_eq!(PgVersion::V16.major(), 16);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PgVersion {
    /// PostgreSQL 13 (magic 0xD106).
    V13,
    /// PostgreSQL 14 (magic 0xD10D).
    V14,
    /// PostgreSQL 15 (magic 0xD110).
    V15,
    /// PostgreSQL 16 (magic 0xD113).
    V16,
    /// PostgreSQL 17 (magic 0xD116).
    V17,
    /// PostgreSQL 18 (magic 0xD118).
    V18,
    /// PostgreSQL 19 (magic 0xD122).
    V19,
}

impl PgVersion {
    /// Every supported version, oldest first.
    pub const ALL: [PgVersion; 7] = [
        PgVersion::V13,
        PgVersion::V14,
        PgVersion::V15,
        PgVersion::V16,
        PgVersion::V17,
        PgVersion::V18,
        PgVersion::V19,
    ];

    /// The version whose `XLOG_PAGE_MAGIC` is `magic`.
    pub const fn from_magic(magic: u16) -> Option<PgVersion> {
        Some(match magic {
            0xD106 => PgVersion::V13,
            0xD10D => PgVersion::V14,
            0xD110 => PgVersion::V15,
            0xD113 => PgVersion::V16,
            0xD116 => PgVersion::V17,
            0xD118 => PgVersion::V18,
            0xD122 => PgVersion::V19,
            _ => return None,
        })
    }

    /// The version for a major number (13..=19).
    pub const fn from_major(major: u32) -> Option<PgVersion> {
        Some(match major {
            13 => PgVersion::V13,
            14 => PgVersion::V14,
            15 => PgVersion::V15,
            16 => PgVersion::V16,
            17 => PgVersion::V17,
            18 => PgVersion::V18,
            19 => PgVersion::V19,
            _ => return None,
        })
    }

    /// The `XLOG_PAGE_MAGIC` of this version.
    pub const fn magic(self) -> u16 {
        match self {
            PgVersion::V13 => 0xD106,
            PgVersion::V14 => 0xD10D,
            PgVersion::V15 => 0xD110,
            PgVersion::V16 => 0xD113,
            PgVersion::V17 => 0xD116,
            PgVersion::V18 => 0xD118,
            PgVersion::V19 => 0xD122,
        }
    }

    /// The major version number.
    pub const fn major(self) -> u32 {
        match self {
            PgVersion::V13 => 13,
            PgVersion::V14 => 14,
            PgVersion::V15 => 15,
            PgVersion::V16 => 16,
            PgVersion::V17 => 17,
            PgVersion::V18 => 18,
            PgVersion::V19 => 19,
        }
    }

    /// `CATALOG_VERSION_NO` of the release branch, used in tablespace directory names
    /// (`PG_<major>_<catversion>`).
    pub const fn catversion(self) -> u32 {
        match self {
            PgVersion::V13 => 202007201,
            PgVersion::V14 => 202107181,
            PgVersion::V15 => 202209061,
            PgVersion::V16 => 202307071,
            PgVersion::V17 => 202406281,
            PgVersion::V18 => 202506291,
            PgVersion::V19 => 202610061,
        }
    }

    /// Whether this version's pg_waldump prints every LSN as `%X/%08X` (19 and later); before 19
    /// only the record line pads the low half, descriptions and messages print `%X/%X`.
    pub const fn pads_lsns(self) -> bool {
        self as u8 >= PgVersion::V19 as u8
    }

    /// `lsn` as this version's pg_waldump prints it in descriptions and messages
    /// (see [`PgVersion::pads_lsns`]).
    ///
    /// ```
    /// use pgwal::{wal::PgVersion, Lsn};
    /// assert_eq!(PgVersion::V18.lsn(Lsn(0x1_0000_2000)).to_string(), "1/2000");
    /// assert_eq!(PgVersion::V19.lsn(Lsn(0x1_0000_2000)).to_string(), "1/00002000");
    /// ```
    pub fn lsn(self, lsn: crate::Lsn) -> impl fmt::Display {
        struct Text(crate::Lsn, bool);
        impl fmt::Display for Text {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                if self.1 {
                    write!(f, "{:#}", self.0)
                } else {
                    write!(f, "{}", self.0)
                }
            }
        }
        Text(lsn, self.pads_lsns())
    }

    /// The highest built-in resource manager id plus one is the same (22) in every version;
    /// 15 and later also accept custom resource managers 128..=255.
    pub const fn rmid_is_valid(self, rmid: u8) -> bool {
        match self {
            PgVersion::V13 | PgVersion::V14 => rmid <= 21,
            _ => rmid <= 21 || rmid >= 128,
        }
    }
}

impl fmt::Display for PgVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.major())
    }
}

#[cfg(test)]
mod tests {
    use super::PgVersion;
    use crate::segment::WalSegSize;
    use crate::wal::{DecoderConfig, WalDecoder};
    use crate::Lsn;

    /// Every supported version round-trips through its magic and major number.
    #[test]
    fn table_is_consistent() {
        for v in PgVersion::ALL {
            assert_eq!(PgVersion::from_magic(v.magic()), Some(v));
            assert_eq!(PgVersion::from_major(v.major()), Some(v));
        }
        assert!(PgVersion::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    /// WAL of a major this table does not know (here: the newest sample with its magic moved
    /// one past the newest known) is refused with an error naming the magic, never decoded
    /// with another major's rules.
    #[test]
    fn unknown_magic_is_an_error_not_a_misdecoding() {
        let newest = PgVersion::ALL[PgVersion::ALL.len() - 1];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../testdata/wal/pg{}", newest.major()));
        let seg = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().is_some_and(|n| n.len() == 24))
            .min()
            .unwrap();
        let mut wal = std::fs::read(&seg).unwrap();
        let next = newest.magic() + 1;
        assert_eq!(PgVersion::from_magic(next), None);
        wal[..2].copy_from_slice(&next.to_le_bytes());
        let start = Lsn(u64::from_le_bytes(wal[8..16].try_into().unwrap()));
        let mut decoder = WalDecoder::new(DecoderConfig::new(WalSegSize::DEFAULT), start);
        let mut input = &wal[..];
        let err = decoder.decode(&mut input).unwrap_err().to_string();
        assert!(
            err.contains(&format!("invalid magic number {next:04X}")),
            "{err}"
        );
    }
}
