//! Log sequence numbers: byte positions in the write-ahead log.

use std::fmt;
use std::str::FromStr;

/// A position in the WAL stream (PostgreSQL's `XLogRecPtr`), printed and parsed in PostgreSQL's
/// `X/X` form (high and low 32 bits in upper-case hex).
///
/// ```
/// use pgwal::Lsn;
/// let lsn: Lsn = "0/16B3748".parse().unwrap();
/// assert_eq!(lsn.0, 0x16B_3748);
/// assert_eq!(lsn.to_string(), "0/16B3748");
/// assert_eq!(format!("{:#}", lsn), "0/016B3748"); // pg_waldump's zero-padded record-line form
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The invalid LSN (`InvalidXLogRecPtr`), zero.
    pub const INVALID: Lsn = Lsn(0);
    /// The largest representable LSN.
    pub const MAX: Lsn = Lsn(u64::MAX);

    /// True unless this is [`Lsn::INVALID`].
    pub const fn is_valid(self) -> bool {
        self.0 != 0
    }

    /// Adds `bytes`, or `None` on overflow.
    pub fn checked_add(self, bytes: u64) -> Option<Lsn> {
        self.0.checked_add(bytes).map(Lsn)
    }

    /// Subtracts `bytes`, or `None` on underflow.
    pub fn checked_sub(self, bytes: u64) -> Option<Lsn> {
        self.0.checked_sub(bytes).map(Lsn)
    }

    /// The number of bytes from `earlier` to `self`, or `None` if `earlier` is later.
    pub fn distance_from(self, earlier: Lsn) -> Option<u64> {
        self.0.checked_sub(earlier.0)
    }

    /// The offset of this LSN inside its WAL page of `page_size` bytes (a power of two).
    pub fn page_offset(self, page_size: u32) -> u32 {
        (self.0 & (u64::from(page_size) - 1)) as u32
    }

    /// The start of the page holding this LSN.
    pub fn page_start(self, page_size: u32) -> Lsn {
        Lsn(self.0 & !(u64::from(page_size) - 1))
    }

    /// Rounds up to a multiple of 8 (`MAXALIGN` on 64-bit platforms); `None` on overflow.
    pub fn maxalign(self) -> Option<Lsn> {
        self.0.checked_add(7).map(|v| Lsn(v & !7))
    }

    /// Wrapper whose `Display` prints `X/XXXXXXXX` (low half zero-padded to 8 digits), as the
    /// pg_waldump record line does. Same as `format!("{:#}", lsn)`.
    pub fn padded(self) -> impl fmt::Display {
        struct Padded(u64);
        impl fmt::Display for Padded {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:X}/{:08X}", self.0 >> 32, self.0 as u32)
            }
        }
        Padded(self.0)
    }
}

impl fmt::Display for Lsn {
    /// `X/X`; with the alternate flag (`{:#}`) the low half is zero-padded to 8 digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            write!(f, "{:X}/{:08X}", self.0 >> 32, self.0 as u32)
        } else {
            write!(f, "{:X}/{:X}", self.0 >> 32, self.0 as u32)
        }
    }
}

impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lsn({self})")
    }
}

impl From<u64> for Lsn {
    fn from(v: u64) -> Lsn {
        Lsn(v)
    }
}

impl From<Lsn> for u64 {
    fn from(v: Lsn) -> u64 {
        v.0
    }
}

/// The text was not an LSN in `X/X` form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid WAL location: \"{0}\"")]
pub struct ParseLsnError(pub String);

impl FromStr for Lsn {
    type Err = ParseLsnError;

    /// Parses `X/X`: one to eight hex digits on each side of the slash, either case.
    fn from_str(s: &str) -> Result<Lsn, ParseLsnError> {
        let err = || ParseLsnError(s.to_owned());
        let (hi, lo) = s.split_once('/').ok_or_else(err)?;
        let part = |p: &str| -> Result<u64, ParseLsnError> {
            if p.is_empty() || p.len() > 8 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            u64::from_str_radix(p, 16).map_err(|_| err())
        };
        Ok(Lsn((part(hi)? << 32) | part(lo)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        for (text, v) in [
            ("0/0", 0u64),
            ("1/0", 1 << 32),
            ("FFFFFFFF/FFFFFFFF", u64::MAX),
        ] {
            let l: Lsn = text.parse().unwrap();
            assert_eq!(l.0, v);
            assert_eq!(l.to_string(), text);
        }
        assert_eq!("a/b".parse::<Lsn>().unwrap(), Lsn(0xa_0000_000b));
        for bad in [
            "",
            "/",
            "0/",
            "/0",
            "0x1/0",
            "1/123456789",
            "g/0",
            "0/0/0",
            "+1/0",
        ] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
        assert_eq!(format!("{:#}", Lsn(0x1_0000_00A0)), "1/000000A0");
        assert_eq!(Lsn(0x1_0000_00A0).padded().to_string(), "1/000000A0");
    }

    #[test]
    fn arithmetic() {
        let l = Lsn(0x3_0123_4567);
        assert_eq!(l.page_offset(8192), 0x567);
        assert_eq!(l.page_start(8192), Lsn(0x3_0123_4000));
        assert_eq!(Lsn(9).maxalign(), Some(Lsn(16)));
        assert_eq!(Lsn(u64::MAX).maxalign(), None);
        assert_eq!(Lsn(5).checked_sub(6), None);
        assert_eq!(Lsn(10).distance_from(Lsn(4)), Some(6));
    }
}
