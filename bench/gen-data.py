"""Generates the benchmark data set: about 2.3 GiB of mixed files.

- 12,000 small files (1-32 KiB): half log-like text (compressible), half random;
- 300 medium files (1-8 MiB): a third text, the rest random;
- two large files of 320 MiB: one random, one text;
- a copy of 60 of the medium files elsewhere in the tree (duplication).

Usage: gen-data.py DIR [SEED]
"""
import os
import random
import shutil
import sys

root = sys.argv[1]
rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
WORDS = "select insert update delete from where order customer invoice payment status ok error warn info db api user session token".split()


def text(size):
    out = []
    n = 0
    while n < size:
        line = "2026-11-%02d %02d:%02d:%02d %s id=%d %s\n" % (
            rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
            rng.choice(WORDS), rng.randint(0, 10**9), " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))))
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def write(path, size, compressible):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 8 << 20)
            f.write(text(n) if compressible else os.urandom(n))
            left -= n


for i in range(12000):
    write(f"{root}/small/d{i // 500:02d}/f{i:05d}.dat", rng.randint(1 << 10, 32 << 10), i % 2 == 0)
for i in range(300):
    write(f"{root}/medium/m{i:03d}.bin", rng.randint(1 << 20, 8 << 20), i % 3 == 0)
write(f"{root}/large/random.img", 320 << 20, False)
write(f"{root}/large/app.log", 320 << 20, True)
for i in range(60):
    os.makedirs(f"{root}/copies", exist_ok=True)
    shutil.copyfile(f"{root}/medium/m{i:03d}.bin", f"{root}/copies/m{i:03d}.bin")
