#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
# Writes the small seed corpora: fuzz_cmd (see fuzz_cmd.c for the format)
# and the image defects of fuzz_img, derived from its 1.1 image.
import os
import struct
import sys


def sqe(opc, nsid=0, prp1=0, prp2=0, dw=None, flags=0):
    b = bytearray(64)
    b[0] = opc
    b[1] = flags
    struct.pack_into('<I', b, 4, nsid)
    struct.pack_into('<Q', b, 24, prp1)
    struct.pack_into('<Q', b, 32, prp2)
    for n, v in (dw or {}).items():
        struct.pack_into('<I', b, 4 * n, v)
    return bytes(b)


def io(q, s):
    return bytes([1, q - 1]) + s


def adm(s):
    return bytes([0]) + s


POLL = bytes([4, 64])
BACKEND = bytes([5, 15]) + bytes(32)
seeds = {
    'read': io(1, sqe(2, 1, 0, 0, {10: 5})) + POLL + BACKEND + POLL,
    'write-prplist': bytes([3, 0x00, 0x30, 16]) +
    struct.pack('<QQ', 0x1000, 0x2000) +
    io(2, sqe(1, 1, 0, 0x30000 - 0x8000, {12: 3})) + POLL + BACKEND,
    'identify': adm(sqe(6, 0, 0, 0, {10: 1})) + POLL +
    adm(sqe(6, 1, 0, 0, {10: 3})) + POLL,
    'sgl': io(1, sqe(2, 1, 0x100, 0x2000, {12: 0}, flags=0x40)) + POLL +
    BACKEND,
    'features-migrate': adm(sqe(9, 0, 0, 0, {10: 8, 11: 0x103})) + POLL +
    io(1, sqe(8, 1, 0, 0, {10: 1})) + bytes([7]) + POLL + BACKEND +
    bytes([2, 3, 5, 0]),
    'dsm-reset': io(2, sqe(9, 1, 0, 0, {10: 1, 11: 4})) + POLL +
    bytes([6, 5, 0, 0, 0]) + BACKEND + POLL,
}
out = sys.argv[1] if len(sys.argv) > 1 else 'seeds/fuzz_cmd'
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(data)


# fuzz_img: each state image defect the decoder once accepted, derived from
# the 1.1 image of the corpus with a consistent header (length, CRC32C).
def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 & -(crc & 1))
    return crc ^ 0xffffffff


def sections(img):
    pos, out = 32, []
    for _ in range(struct.unpack_from('<I', img, 24)[0]):
        t, fl, ln = struct.unpack_from('<HHI', img, pos)
        out.append([t, fl, bytearray(img[pos + 8:pos + 8 + ln])])
        pos += 8 + ln
    return out


def build(hdr, secs, tail=b''):
    body = b''.join(struct.pack('<HHI', t, fl, len(p)) + bytes(p)
                    for t, fl, p in secs) + tail
    h = bytearray(hdr[:32])
    struct.pack_into('<III', h, 16, 32 + len(body), 0, len(secs))
    crc = crc32c(bytes(h) + body)
    struct.pack_into('<I', h, 20, crc)
    return bytes(h) + body


def sec(secs, t):
    return next(s for s in secs if s[0] == t)[2]


def page_entry(cns, nsid, data):
    return struct.pack('<BBHIHHH', cns, 0, 0, nsid, 1, 0, len(data)) + data


def img_seeds(base):
    def v(f):
        s = sections(base)
        tail = f(s)
        return build(base, s, tail or b'')

    def idc_twice(s):
        ident = sec(s, 6)
        page = bytearray(4096)
        page[77], page[259] = 5, 7
        ident += page_entry(1, 1, bytes(page))
        struct.pack_into('<H', ident, 18, struct.unpack_from('<H', ident, 18)[0] + 1)

    def nine_ns(s):
        ident = sec(s, 6)
        for ns in range(2, 11):
            ident += page_entry(0, ns, struct.pack('<QQ', 4096, 4096))
        struct.pack_into('<H', ident, 18, struct.unpack_from('<H', ident, 18)[0] + 9)

    def q(s, idx, off, fmt, val):
        qs = sec(s, 2)
        struct.pack_into(fmt, qs, 4 + 20 * idx + off, val)

    def ncq(s):
        return struct.unpack_from('<H', sec(s, 2), 2)[0]

    out = {
        'idc-twice.img': v(idc_twice),
        'nine-namespaces.img': v(nine_ns),
        'nq-above-grant.img': v(lambda s: struct.pack_into('<I', sec(s, 3), 16, (15 << 16) | 31)),
        'ring-wraps.img': v(lambda s: (q(s, ncq(s) + 1, 12, '<Q', 0xfffffffffffff000), q(s, ncq(s) + 1, 4, '<H', 65))[0]),
        'ring-at-zero.img': v(lambda s: q(s, ncq(s) + 1, 12, '<Q', 0)),
        'ring-overlap.img': v(lambda s: q(s, ncq(s) + 2, 12, '<Q', struct.unpack_from('<Q', sec(s, 2), 4 + 20 * (ncq(s) + 1) + 12)[0])),
        'admin-cq-no-irq.img': v(lambda s: struct.pack_into('<H', sec(s, 2), 4 + 10, 1 | 4)),
        'aer-cid-twice.img': v(lambda s: (sec(s, 4).__setitem__(0, 2), sec(s, 4).__setitem__(slice(4, 4), sec(s, 4)[4:6]))[0]),
        'pending-wraps.img': v(lambda s: sec(s, 0x8001).extend(struct.pack('<HI', 1, 0xffffffff))),
        'cc-css.img': v(lambda s: struct.pack_into('<I', sec(s, 1), 0, struct.unpack_from('<I', sec(s, 1), 0)[0] | 0x10)),
        'unknown-critical.img': v(lambda s: s.append([0x40, 1, bytearray(b'new')])),
        'dbbuf-twice.img': v(lambda s: s.append([5, 1, bytearray(sec(s, 5))])),
        'dbbuf-missing.img': v(lambda s: s.remove(next(x for x in s if x[0] == 5))),
        'trailing-bytes.img': v(lambda s: b'\0\0\0\0'),
    }

    def disabled(s):
        regs, qs = sec(s, 1), sec(s, 2)
        struct.pack_into('<II', regs, 0, 0, 0)
        sec(s, 4)[0] = 0
        sec(s, 5)[0] = 0
        n = ncq(s)
        del qs[4 + 20 * n:4 + 20 * n + 20]
        del qs[4:24]
        struct.pack_into('<HH', qs, 0, struct.unpack_from('<H', qs, 0)[0] - 1, n - 1)
    out['io-queues-disabled.img'] = v(disabled)
    return out


img_out = sys.argv[2] if len(sys.argv) > 2 else 'seeds/fuzz_img'
with open(os.path.join(img_out, 'nvme-v1.1.img'), 'rb') as f:
    base_img = f.read()
for name, data in img_seeds(base_img).items():
    with open(os.path.join(img_out, name), 'wb') as f:
        f.write(data)
