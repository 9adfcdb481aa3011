//! Allocation-free formatting for the hot record-line path: fields are written into a small
//! stack buffer and appended in one go (`write!` with padding costs several times more).

/// A fixed-size ASCII line buffer.
pub struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Line {
    /// An empty buffer.
    #[inline]
    pub fn new() -> Line {
        Line {
            buf: [0; 160],
            len: 0,
        }
    }

    /// Appends ASCII bytes (silently truncated if the buffer is full).
    #[inline]
    pub fn bytes(&mut self, s: &[u8]) {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    /// Appends `n` copies of `b`.
    #[inline]
    pub fn fill(&mut self, b: u8, n: usize) {
        let n = n.min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].fill(b);
        self.len += n;
    }

    /// Appends `v` in decimal, right-aligned in `width` columns (`%*u`; 0 = minimal).
    #[inline]
    pub fn dec(&mut self, v: u64, width: usize) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        let mut n = v;
        loop {
            i -= 1;
            tmp[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let digits = tmp.len() - i;
        if width > digits {
            self.fill(b' ', width - digits);
        }
        self.bytes(&tmp[i..]);
    }

    /// Appends `v` in upper-case hex, zero-padded to `width` digits.
    #[inline]
    pub fn hex(&mut self, v: u64, width: usize) {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let mut tmp = [0u8; 16];
        let mut i = tmp.len();
        let mut n = v;
        loop {
            i -= 1;
            tmp[i] = DIGITS[(n & 15) as usize];
            n >>= 4;
            if n == 0 {
                break;
            }
        }
        let digits = tmp.len() - i;
        if width > digits {
            self.fill(b'0', width - digits);
        }
        self.bytes(&tmp[i..]);
    }

    /// Appends an LSN as `X/XXXXXXXX` (pg_waldump's record-line form).
    #[inline]
    pub fn lsn_padded(&mut self, lsn: u64) {
        self.hex(lsn >> 32, 0);
        self.bytes(b"/");
        self.hex(lsn & 0xFFFF_FFFF, 8);
    }

    /// Appends the buffer to `out` and empties it.
    #[inline]
    pub fn flush_into(&mut self, out: &mut String) {
        // SAFETY: every method writes ASCII bytes only, so the buffer is valid UTF-8.
        out.push_str(unsafe { std::str::from_utf8_unchecked(&self.buf[..self.len]) });
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_printf() {
        let mut l = Line::new();
        l.dec(42, 6);
        l.dec(0, 3);
        l.dec(1234567, 6);
        l.bytes(b"|");
        l.lsn_padded(0x1_0000_00A0);
        l.bytes(b"|");
        l.hex(0, 0);
        l.dec(u64::MAX, 0);
        let mut s = String::new();
        l.flush_into(&mut s);
        assert_eq!(s, "    42  01234567|1/000000A0|018446744073709551615");
    }
}
