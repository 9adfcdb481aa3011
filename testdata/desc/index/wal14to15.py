#!/usr/bin/env python3
"""Rewrites PostgreSQL 14 WAL segments so that pg_waldump 15 reads them (there is no reference
pg_waldump 14): page magic 0xD10D becomes 0xD110, and the bimg_info bits of block images are
mapped from 14's (HAS_HOLE 1, IS_COMPRESSED 2, APPLY 4) to 15's (HAS_HOLE 1, APPLY 2,
COMPRESS_PGLZ 4), with the CRCs of the changed records recomputed. Everything else in the WAL
formats of 14 and 15 is the same for the records of the index rmgrs.

Usage: wal14to15.py SRC_DIR DST_DIR"""
import os
import struct
import sys

PAGE = 8192
CRC_TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    CRC_TABLE.append(c)


def crc32c(crc, data):
    for b in data:
        crc = CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def main(src, dst):
    names = sorted(n for n in os.listdir(src)
                   if len(n) == 24 and all(c in "0123456789ABCDEF" for c in n))
    segsz = os.path.getsize(os.path.join(src, names[0]))
    buf = bytearray()
    for n in names:
        with open(os.path.join(src, n), "rb") as f:
            buf += f.read()
    for i in range(len(buf) // PAGE):
        if struct.unpack_from("<H", buf, i * PAGE)[0] == 0xD10D:
            struct.pack_into("<H", buf, i * PAGE, 0xD110)

    def positions(start, n):
        """Buffer offsets of the n record bytes from start, skipping page headers."""
        out, p = [], start
        while len(out) < n:
            if p % PAGE == 0:
                p += 40 if p % segsz == 0 else 24
            take = min(n - len(out), PAGE - p % PAGE)
            out.extend(range(p, p + take))
            p += take
        return out, p

    p = 40
    rem = struct.unpack_from("<I", buf, 16)[0]
    if rem:
        _, p = positions(p, rem)
        p = (p + 7) & ~7
    changed = 0
    while p + 24 <= len(buf):
        if p % PAGE == 0:
            p += 40 if p % segsz == 0 else 24
        hpos, _ = positions(p, 4)
        if hpos[-1] >= len(buf):
            break
        tot = struct.unpack("<I", bytes(buf[q] for q in hpos))[0]
        if tot == 0:
            break
        pos, end = positions(p, tot)
        if pos[-1] >= len(buf):
            break
        rec = bytearray(buf[q] for q in pos)
        o, datatotal, modified = 24, 0, False
        while tot - o > datatotal:
            bid = rec[o]
            if bid == 255:
                datatotal += rec[o + 1]
                o += 2
            elif bid == 254:
                datatotal += struct.unpack_from("<I", rec, o + 1)[0]
                o += 5
            elif bid == 253:
                o += 3
            elif bid == 252:
                o += 5
            else:
                fork_flags = rec[o + 1]
                datatotal += struct.unpack_from("<H", rec, o + 2)[0]
                o += 4
                if fork_flags & 0x10:
                    datatotal += struct.unpack_from("<H", rec, o)[0]
                    info = rec[o + 4]
                    new = (info & 0x01) | (0x04 if info & 0x02 else 0) | (0x02 if info & 0x04 else 0)
                    if new != info:
                        rec[o + 4] = new
                        modified = True
                    o += 7 if (info & 0x01) and (info & 0x02) else 5
                o += 4 if fork_flags & 0x80 else 16
        if modified:
            crc = crc32c(crc32c(0xFFFFFFFF, rec[24:]), rec[:20]) ^ 0xFFFFFFFF
            struct.pack_into("<I", rec, 20, crc)
            for q, b in zip(pos, rec):
                buf[q] = b
            changed += 1
        p = (end + 7) & ~7
        if rec[17] == 0 and rec[16] & 0xF0 == 0x40:  # XLOG SWITCH: the segment ends here
            p = (p + segsz - 1) // segsz * segsz
    os.makedirs(dst, exist_ok=True)
    for i, n in enumerate(names):
        with open(os.path.join(dst, n), "wb") as f:
            f.write(buf[i * segsz:(i + 1) * segsz])
    print(f"{changed} records with images rewritten", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
