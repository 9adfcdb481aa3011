//! Allocation-free formatting for the hot record-line path: fields are written straight into
//! the output string's spare capacity. `write!` with padding costs several times more, and so
//! did staging the line in a zeroed stack buffer (a memset and two variable-length copies per
//! line).
//!
//! [`Line`] writes into a `String`'s bytes without checking UTF-8 per write, so its methods
//! take only what keeps the text valid: `&str` (valid UTF-8 by its type), spaces, and digits
//! it generates itself. No method accepts arbitrary bytes.

/// Room reserved before each write; every single write is shorter.
const ROOM: usize = 64;

/// Two decimal digits for each value below 100.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends fields to a `String`: text (`&str`), spaces, and numbers in decimal or hex.
pub struct Line<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Line<'a> {
    /// A writer appending to `out`.
    #[inline]
    pub fn new(out: &'a mut String) -> Line<'a> {
        // SAFETY: `out` stays valid UTF-8: every method appends either a whole `&str` (valid
        // UTF-8 by its type) or ASCII bytes it generates itself (spaces, digits), and none
        // takes bytes from its caller.
        Line {
            out: unsafe { out.as_mut_vec() },
        }
    }

    /// A pointer to `n` writable bytes at the end of the output.
    #[inline(always)]
    fn room(&mut self, n: usize) -> *mut u8 {
        if self.out.capacity() - self.out.len() < n {
            self.out.reserve(n.max(ROOM));
        }
        // SAFETY: the capacity holds `len + n` bytes, reserved just above.
        unsafe { self.out.as_mut_ptr().add(self.out.len()) }
    }

    /// Marks `n` more bytes, written through [`Line::room`], as part of the output.
    #[inline(always)]
    unsafe fn commit(&mut self, n: usize) {
        // SAFETY (caller): the `n` bytes after `len` were written.
        unsafe { self.out.set_len(self.out.len() + n) };
    }

    /// Appends text.
    #[inline(always)]
    pub fn str(&mut self, s: &str) {
        let p = self.room(s.len());
        // SAFETY: `room` made space for `s.len()` bytes; `s` cannot overlap spare capacity.
        unsafe {
            std::ptr::copy_nonoverlapping(s.as_ptr(), p, s.len());
            self.commit(s.len());
        }
    }

    /// Appends `n` spaces.
    #[inline]
    pub fn spaces(&mut self, n: usize) {
        let p = self.room(n);
        // SAFETY: `room` made space for `n` bytes.
        unsafe {
            std::ptr::write_bytes(p, b' ', n);
            self.commit(n);
        }
    }

    /// Appends `v` in decimal, right-aligned in `width` columns (`%*u`; 0 = minimal).
    #[inline]
    pub fn dec(&mut self, v: u64, width: usize) {
        let digits = v.checked_ilog10().map_or(1, |l| l as usize + 1);
        if width > digits {
            self.spaces(width - digits);
        }
        let p = self.room(20);
        let (mut n, mut i) = (v, digits);
        // SAFETY: `room` made space for 20 bytes, the most a u64 has; `i` counts down from
        // the digit count, two digits at a time while at least two remain.
        unsafe {
            while n >= 100 {
                let pair = (n % 100) as usize * 2;
                n /= 100;
                i -= 2;
                std::ptr::copy_nonoverlapping(PAIRS.as_ptr().add(pair), p.add(i), 2);
            }
            if n >= 10 {
                i -= 2;
                std::ptr::copy_nonoverlapping(PAIRS.as_ptr().add(n as usize * 2), p.add(i), 2);
            } else {
                i -= 1;
                *p.add(i) = b'0' + n as u8;
            }
            debug_assert_eq!(i, 0);
            self.commit(digits);
        }
    }

    /// Appends `v` in upper-case hex, zero-padded to `width` digits.
    #[inline]
    pub fn hex(&mut self, v: u64, width: usize) {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let digits = (64 - (v | 1).leading_zeros() as usize).div_ceil(4);
        let total = digits.max(width);
        let p = self.room(total.max(16));
        // SAFETY: `room` made space for `total` bytes; `i` counts down from `total`.
        unsafe {
            let (mut n, mut i) = (v, total);
            while i > 0 {
                i -= 1;
                *p.add(i) = DIGITS[(n & 15) as usize];
                n >>= 4;
            }
            self.commit(total);
        }
    }

    /// Appends an LSN as `X/XXXXXXXX` (pg_waldump's record-line form).
    #[inline]
    pub fn lsn_padded(&mut self, lsn: u64) {
        self.hex(lsn >> 32, 0);
        self.str("/");
        self.hex(lsn & 0xFFFF_FFFF, 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_printf() {
        let mut s = String::from("<");
        let mut l = Line::new(&mut s);
        l.dec(42, 6);
        l.dec(0, 3);
        l.dec(1234567, 6);
        l.str("|");
        l.lsn_padded(0x1_0000_00A0);
        l.str("|");
        l.hex(0, 0);
        l.dec(u64::MAX, 0);
        l.spaces(2);
        assert_eq!(s, "<    42  01234567|1/000000A0|018446744073709551615  ");
    }

    #[test]
    fn text_may_be_any_utf8() {
        let mut s = String::from("é");
        let mut l = Line::new(&mut s);
        l.str("rmgr: Ünïcode ✓ ");
        l.dec(7, 2);
        l.str("🦀");
        assert_eq!(s, "érmgr: Ünïcode ✓  7🦀");
        assert!(std::str::from_utf8(s.as_bytes()).is_ok());
    }

    #[test]
    fn decimal_and_hex_of_every_width() {
        let mut s = String::new();
        for v in (0..=20u32)
            .flat_map(|k| {
                let p = 10u64.saturating_pow(k);
                [p.saturating_sub(1), p, p.saturating_add(1)]
            })
            .chain((0..64).map(|b| 1u64 << b))
            .chain([u64::MAX])
        {
            for width in [0, 1, 6, 10, 17, 25] {
                s.clear();
                let mut l = Line::new(&mut s);
                l.dec(v, width);
                l.str(" ");
                l.hex(v, width);
                assert_eq!(s, format!("{v:width$} {v:0width$X}"));
            }
        }
    }
}
