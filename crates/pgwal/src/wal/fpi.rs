//! Restoring full-page images: decompression (pglz, LZ4, zstd) and hole filling
//! (`RestoreBlockImage`).

use crate::wal::record::{BlockImage, ImageCompression, BLCKSZ};

/// Why a full-page image could not be restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The compressed bytes are not valid for the method.
    #[error("could not decompress image compressed with {0}")]
    Decompress(&'static str),
    /// The flags name no known compression method.
    #[error("image compressed with unknown method")]
    UnknownMethod,
    /// The method is known, but this build was made without it (the crate's `zstd` feature).
    #[error("image compressed with {0}, which this build of pgwal does not include")]
    NotBuiltIn(&'static str),
    /// The hole does not fit in a block, or the sizes disagree.
    #[error("invalid image sizes (hole offset {offset}, hole length {length}, image length {image_len})")]
    BadSizes {
        /// Hole offset.
        offset: u16,
        /// Hole length.
        length: u16,
        /// Stored image length.
        image_len: usize,
    },
}

/// Decompresses PostgreSQL's pglz format into exactly `out.len()` bytes (`pglz_decompress`
/// with `check_complete`). Returns false on malformed input.
pub fn pglz_decompress(src: &[u8], out: &mut [u8]) -> bool {
    let (mut sp, mut dp) = (0usize, 0usize);
    while sp < src.len() && dp < out.len() {
        let mut ctrl = src[sp];
        sp += 1;
        let mut bit = 0;
        while bit < 8 && sp < src.len() && dp < out.len() {
            if ctrl & 1 != 0 {
                let Some(&[b0, b1]) = src
                    .get(sp..sp + 2)
                    .and_then(|s| <&[u8; 2]>::try_from(s).ok())
                else {
                    return false;
                };
                let mut len = usize::from(b0 & 0x0f) + 3;
                let off = (usize::from(b0 & 0xf0) << 4) | usize::from(b1);
                sp += 2;
                if len == 18 {
                    let Some(&extra) = src.get(sp) else {
                        return false;
                    };
                    len += usize::from(extra);
                    sp += 1;
                }
                if off == 0 || off > dp {
                    return false;
                }
                let len = len.min(out.len() - dp);
                for i in 0..len {
                    out[dp + i] = out[dp + i - off];
                }
                dp += len;
            } else {
                out[dp] = src[sp];
                dp += 1;
                sp += 1;
            }
            ctrl >>= 1;
            bit += 1;
        }
    }
    dp == out.len() && sp == src.len()
}

/// Rebuilds the 8 kB page a full-page image stands for: decompresses it if needed and puts
/// back the zeroed hole.
pub fn restore_block_image(img: &BlockImage<'_>) -> Result<Box<[u8; BLCKSZ as usize]>, ImageError> {
    let bad = || ImageError::BadSizes {
        offset: img.hole_offset,
        length: img.hole_length,
        image_len: img.bytes.len(),
    };
    let hole_off = usize::from(img.hole_offset);
    let hole_len = usize::from(img.hole_length);
    let body_len = (BLCKSZ as usize).checked_sub(hole_len).ok_or_else(bad)?;
    if hole_off > body_len {
        return Err(bad());
    }
    let mut body = vec![0u8; body_len];
    match img.flags.compression {
        ImageCompression::None => {
            if img.bytes.len() != body_len {
                return Err(bad());
            }
            body.copy_from_slice(img.bytes);
        }
        ImageCompression::Pglz => {
            if !pglz_decompress(img.bytes, &mut body) {
                return Err(ImageError::Decompress("pglz"));
            }
        }
        ImageCompression::Lz4 => match lz4_flex::block::decompress_into(img.bytes, &mut body) {
            Ok(n) if n == body_len => {}
            _ => return Err(ImageError::Decompress("lz4")),
        },
        #[cfg(feature = "zstd")]
        ImageCompression::Zstd => match zstd::bulk::decompress_to_buffer(img.bytes, &mut body) {
            Ok(n) if n == body_len => {}
            _ => return Err(ImageError::Decompress("zstd")),
        },
        #[cfg(not(feature = "zstd"))]
        ImageCompression::Zstd => return Err(ImageError::NotBuiltIn("zstd")),
        ImageCompression::Unknown => return Err(ImageError::UnknownMethod),
    }
    let mut page = Box::new([0u8; BLCKSZ as usize]);
    page[..hole_off].copy_from_slice(&body[..hole_off]);
    page[hole_off + hole_len..].copy_from_slice(&body[hole_off..]);
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pglz_literal_and_match() {
        // ctrl 0b0000_0010: literal 'a', then a match of length 3+2=5 at offset 1.
        let src = [0x02, b'a', 0x02, 0x01];
        let mut out = [0u8; 6];
        assert!(pglz_decompress(&src, &mut out));
        assert_eq!(&out, b"aaaaaa");
        // Offsets past the output so far are rejected, as is trailing input.
        assert!(!pglz_decompress(&[0x01, 0x02, 0x05], &mut [0u8; 5]));
        assert!(!pglz_decompress(&[0x00, b'a', b'b'], &mut [0u8; 1]));
        assert!(!pglz_decompress(&[0x01, 0x0f], &mut [0u8; 4]));
    }
}
