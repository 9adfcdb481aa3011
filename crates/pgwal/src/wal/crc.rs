//! CRC-32C for WAL records.
//!
//! Two kinds of input matter. Most WAL records are short (tens to hundreds of bytes), and every
//! record takes two calls (payload, then header), so the per-call set-up of a general routine
//! (alignment prologue and epilogue, byte-at-a-time ends) costs as much as the CRC itself: short
//! inputs take a straight loop of 8-byte CRC instructions here. Full-page images make up most of
//! the bytes: long inputs go to the `crc-fast` crate, which folds 64 bytes or more per step with
//! carry-less multiplication (PCLMULQDQ, or VPCLMULQDQ on AVX-512) and has no serial tail of up
//! to 767 bytes as the `crc32c` crate's three-lane loop does; on an 8 kB image it is about 3×
//! faster in cache and 1.3× faster from memory.

/// Inputs at least this long go to the `crc-fast` crate's folding routine.
const SHORT_MAX: usize = 256;

/// Continues CRC-32C `crc` over `data` (the same result as `crc32c::crc32c_append`).
///
/// ```
/// # use pgwal::wal::crc32c_append;
/// let whole = crc32c_append(0, b"write-ahead log");
/// assert_eq!(crc32c_append(crc32c_append(0, b"write-"), b"ahead log"), whole);
/// assert_eq!(whole, crc32c::crc32c(b"write-ahead log"));
/// ```
#[inline]
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if data.len() < SHORT_MAX {
            if let Some(cpu) = Sse42::detect() {
                return short_sse42(cpu, crc, data);
            }
        }
    }
    long(crc, data)
}

/// A record's CRC as PostgreSQL computes it: the payload after the 24-byte header, then the
/// header's first 20 bytes (see [`crate::wal::record_crc`]). `rec` must be at least 24 bytes.
///
/// Short records, the common case, take one pass of CRC instructions over both parts without
/// a call in between.
#[inline(always)]
pub(crate) fn record_crc(rec: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if rec.len() < SHORT_MAX + 24 {
            if let Some(cpu) = Sse42::detect() {
                return record_sse42(cpu, rec);
            }
        }
    }
    let c = crc32c_append(0, rec.get(24..).unwrap_or(&[]));
    crc32c_append(c, rec.get(..20).unwrap_or(rec))
}

#[cfg(target_arch = "x86_64")]
use cpu::Sse42;

/// The proof that the CPU has SSE 4.2, in its own module so that nothing else can make one.
#[cfg(target_arch = "x86_64")]
mod cpu {
    /// Proof that the CPU running this process has SSE 4.2 (the `crc32` instruction): only
    /// [`Sse42::detect`] makes one, after checking. Every function that executes `crc32` takes
    /// one, so none can run on a CPU without it (where the instruction raises SIGILL). It is
    /// zero-sized: passing it costs nothing, and unlike `#[target_feature(enable = "sse4.2")]`
    /// it does not stop those functions from being inlined into the decoder's loop.
    #[derive(Clone, Copy)]
    pub(super) struct Sse42(());

    impl Sse42 {
        /// A proof, if the CPU has SSE 4.2 (the standard library caches the answer: after
        /// the first call this is a load and a test).
        #[inline(always)]
        pub(super) fn detect() -> Option<Sse42> {
            std::arch::is_x86_feature_detected!("sse4.2").then_some(Sse42(()))
        }
    }
}

/// `crc32` instructions written as inline assembly, so that [`record_sse42`] and
/// [`short_sse42`] need no `target_feature` and inline into the decoder's loop (a function with
/// SSE 4.2 enabled cannot be inlined into one without it, and the call per record cost more
/// than the CRC's own instructions). Each takes an [`Sse42`] proof that the CPU has the
/// instruction.
macro_rules! crc32_insn {
    ($(#[$doc:meta])* $name:ident, $state:ty, $value:ty, $template:literal, $class:ident) => {
        $(#[$doc])*
        #[cfg(target_arch = "x86_64")]
        #[inline(always)]
        fn $name(_: Sse42, crc: $state, v: $value) -> $state {
            let mut c = crc;
            // SAFETY: the CPU has SSE 4.2 (the `Sse42` argument proves it was detected), and
            // the instruction only reads and writes the two registers named.
            unsafe {
                std::arch::asm!(
                    $template,
                    c = inout(reg) c,
                    v = in($class) v,
                    options(pure, nomem, nostack, preserves_flags)
                );
            }
            c
        }
    };
}

crc32_insn!(
    /// `crc32` on 8 bytes.
    crc32_u64, u64, u64, "crc32 {c}, {v}", reg
);
crc32_insn!(
    /// `crc32` on 4 bytes.
    crc32_u32, u32, u32, "crc32 {c:e}, {v:e}", reg
);
crc32_insn!(
    /// `crc32` on 1 byte.
    crc32_u8, u32, u8, "crc32 {c:e}, {v}", reg_byte
);

/// [`record_crc`] with CRC instructions: 8 bytes at a time over the payload, its 0–7 byte tail,
/// then the header's 20 bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn record_sse42(cpu: Sse42, rec: &[u8]) -> u32 {
    let Some((head, payload)) = rec.split_first_chunk::<24>() else {
        return crc32c_append(crc32c_append(0, rec.get(24..).unwrap_or(&[])), rec);
    };
    let mut c = u64::from(u32::MAX);
    // Four words per turn of the loop, then the odd words: the CRC instructions form one
    // dependency chain either way, but the loop's own bookkeeping shrinks.
    let mut quads = payload.chunks_exact(32);
    for q in &mut quads {
        let w = |at: usize| u64::from_le_bytes(array8(&q[at..]));
        c = crc32_u64(cpu, c, w(0));
        c = crc32_u64(cpu, c, w(8));
        c = crc32_u64(cpu, c, w(16));
        c = crc32_u64(cpu, c, w(24));
    }
    let mut rest = quads.remainder();
    while let Some((w, tail)) = rest.split_first_chunk::<8>() {
        c = crc32_u64(cpu, c, u64::from_le_bytes(*w));
        rest = tail;
    }
    // The last 0–7 bytes in one instruction rather than up to four: CRC is linear, so taking
    // `k` bytes from state `c` is `c` shifted down by them, xor the CRC from state zero of
    // those bytes xor `c`'s low bytes; and from state zero, leading zero bytes change nothing,
    // so the `k` bytes go in the top of a word whose low bytes are zero.
    let k = rest.len();
    if k > 0 {
        // The 8 bytes ending where the payload ends (the header precedes it, so they exist).
        let last = u64::from_le_bytes(array8(&rec[rec.len() - 8..]));
        let bits = 8 * k as u32;
        let v = (c ^ (last >> (64 - bits))) & (u64::MAX >> (64 - bits));
        c = (c >> bits) ^ crc32_u64(cpu, 0, v << (64 - bits));
    }
    let c = c as u32;
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&head[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let mut c = crc32_u64(cpu, u64::from(c), word(0));
    c = crc32_u64(cpu, c, word(8));
    let last = [head[16], head[17], head[18], head[19]];
    !crc32_u32(cpu, c as u32, u32::from_le_bytes(last))
}

/// The first 8 bytes of `b` (zeros if shorter; callers pass at least 8).
#[inline(always)]
fn array8(b: &[u8]) -> [u8; 8] {
    b.first_chunk::<8>().copied().unwrap_or([0; 8])
}

/// CRC-32C by carry-less multiplication folding (`crc-fast`), continuing from `crc`.
fn long(crc: u32, data: &[u8]) -> u32 {
    use crc_fast::{CrcAlgorithm, Digest};
    // The digest's state is the raw register: the complement of a finished CRC.
    let mut digest = Digest::new_with_init_state(CrcAlgorithm::Crc32Iscsi, u64::from(!crc));
    digest.update(data);
    digest.finalize() as u32
}

/// CRC-32C with one `crc32` instruction per 8 bytes, unaligned loads, no set-up.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn short_sse42(cpu: Sse42, crc: u32, data: &[u8]) -> u32 {
    let mut c = u64::from(!crc);
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        c = crc32_u64(cpu, c, u64::from_le_bytes(word));
    }
    let mut c = c as u32;
    let mut rest = chunks.remainder();
    if let Some((four, tail)) = rest.split_first_chunk::<4>() {
        c = crc32_u32(cpu, c, u32::from_le_bytes(*four));
        rest = tail;
    }
    for &b in rest {
        c = crc32_u8(cpu, c, b);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_crc_is_payload_then_header() {
        let data: Vec<u8> = (0..2000u32).map(|i| (i * 13 + i / 7) as u8).collect();
        for len in (24..400).chain([511, 1000, 1999]) {
            let rec = &data[1..1 + len];
            let want = crc32c::crc32c_append(crc32c::crc32c(&rec[24..]), &rec[..20]);
            assert_eq!(record_crc(rec), want, "length {len}");
        }
    }

    #[test]
    fn equals_the_crate_for_every_length_and_start() {
        let data: Vec<u8> = (0..9000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in (0..600).chain([767, 768, 1000, 4096, 8192 - 7, 8192]) {
            for start in [0, 1, 3, 7] {
                let d = &data[start..start + len];
                assert_eq!(
                    crc32c_append(0x1234_5678, d),
                    crc32c::crc32c_append(0x1234_5678, d)
                );
            }
        }
    }
}
