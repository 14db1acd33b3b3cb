#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
# Writes the small seed corpus of fuzz_cmd (see fuzz_cmd.c for the format).
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
