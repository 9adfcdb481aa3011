"""Rewrite a PostgreSQL 14 WAL segment so that pg_waldump 15 reads it: page magic 0xD10D -> 0xD110,
and bimg_info bits renumbered (14: HAS_HOLE 1, IS_COMPRESSED 2, APPLY 4; 15: HAS_HOLE 1, APPLY 2,
PGLZ 4), with every record's CRC-32C recomputed. Test scaffolding only."""
import struct, sys

POLY = 0x82F63B78
TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ POLY if c & 1 else c >> 1
    TABLE.append(c)

def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF

src, dst = sys.argv[1], sys.argv[2]
d = bytearray(open(src, 'rb').read())
PAGE = 8192
# logical stream without page headers, and where each stream byte lives in the file
fileoff = []
for p in range(0, len(d), PAGE):
    magic, info = struct.unpack_from('<HH', d, p)
    if magic == 0:
        break
    assert magic == 0xD10D, hex(magic)
    struct.pack_into('<H', d, p, 0xD110)
    hdr = 40 if info & 2 else 24
    fileoff.extend(range(p + hdr, p + PAGE))
# first page: skip a continuation (xlp_rem_len), none expected
assert struct.unpack_from('<I', d, 16)[0] == 0
stream_get = lambda i: d[fileoff[i]]
def read(i, n):
    return bytes(d[fileoff[k]] for k in range(i, i + n))
def write(i, bs):
    for k, b in enumerate(bs):
        d[fileoff[i + k]] = b

pos, nrec, nimg = 0, 0, 0
while pos + 24 <= len(fileoff):
    tot, = struct.unpack('<I', read(pos, 4))
    if tot == 0:
        break
    rec = bytearray(read(pos, tot))
    q, changed = 24, False
    datatotal = 0
    while q < tot - datatotal:
        bid = rec[q]; q += 1
        if bid == 255:
            datatotal += rec[q]; q += 1; break
        if bid == 254:
            datatotal += struct.unpack_from('<I', rec, q)[0]; q += 4; break
        if bid == 253:
            q += 2; continue
        if bid == 252:
            q += 4; continue
        assert bid <= 32, bid
        ff = rec[q]; dlen = struct.unpack_from('<H', rec, q + 1)[0]; q += 3
        datatotal += dlen
        if ff & 0x10:
            blen = struct.unpack_from('<H', rec, q)[0]; info = rec[q + 4]
            new = (info & 1) | (2 if info & 4 else 0) | (4 if info & 2 else 0)
            if new != info:
                rec[q + 4] = new; changed = True
            nimg += 1
            q += 5
            datatotal += blen
            if (info & 1) and (info & 2):
                q += 2
        if not ff & 0x80:
            q += 12
        q += 4
    if changed:
        crc = crc32c(bytes(rec[24:tot]))
        crc = crc32c(bytes(rec[:20]), crc)
        struct.pack_into('<I', rec, 20, crc)
        write(pos, rec)
    nrec += 1
    rmid, info = rec[17], rec[16]
    pos += (tot + 7) & ~7
    if rmid == 0 and info & 0xF0 == 0x40:  # XLOG_SWITCH
        break
open(dst, 'wb').write(d)
print(f'{nrec} records, {nimg} images', file=sys.stderr)
