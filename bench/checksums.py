#!/usr/bin/env python3
"""What block checksums cost: hlfs now against hlfs before them, same run.

1. Reads: bench/bench.py's 4K randread QD16 and 1M seq read QD4 rows with
   two servers, "hlfs" (bin/hlfs) and "hlfs-base" (the same tree built at
   BENCH_BASE_REV, default the commit before block checksums), alternated
   in each round; target: within 3% (ratio >= 0.97).
2. Space: the store bytes after the same fill on both (target: at most
   0.2% more).
3. Scrub speed: `hlfs scrub` of a volume holding BENCH_SCRUB_SIZE (default
   512M) of random data, against reading its segment files sequentially
   (both with the files evicted from the page cache first, so both read
   the device); target: scrub at least half as fast.

Environment: BENCH_BASE_REV, BENCH_SCRUB_SIZE, and bench.py's (BENCH_RUNTIME,
BENCH_ROUNDS, BENCH_SPAN, ...). A report, never a failing exit for
performance.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HLFS = os.path.join(REPO, "bin", "hlfs")
BASE_REV = os.environ.get("BENCH_BASE_REV", "32e32d2^")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)


def build_base(tmp):
    wt = os.path.join(tmp, "base-src")
    run(["git", "-C", REPO, "worktree", "add", "--detach", wt, BASE_REV])
    try:
        out = os.path.join(tmp, "hlfs-base")
        run(["go", "build", "-o", out, "./cmd/hlfs"], cwd=wt)
        return out
    finally:
        run(["git", "-C", REPO, "worktree", "remove", "--force", wt])


def reads(base_bin, tmp):
    out = os.path.join(tmp, "bench.json")
    env = dict(os.environ, BENCH_SERVERS="hlfs,hlfs-base", BENCH_JOBS="randread,seqread",
               BENCH_HLFS_BASE_BIN=base_bin, BENCH_JSON=out)
    subprocess.run([sys.executable, os.path.join(REPO, "bench", "bench.py")], env=env, check=False,
                   stdout=subprocess.DEVNULL)
    with open(out) as f:
        res = json.load(f)["results"]
    rows = []
    for job, title, key in (("randread", "4K randread QD16", "iops"), ("seqread", "1M seq read QD4", "mbps")):
        now = [r[key] for r in res if r["server"] == "hlfs" and r["job"] == job]
        base = [r[key] for r in res if r["server"] == "hlfs-base" and r["job"] == job]
        if not now or not base:
            rows.append("%-22s n/a" % title)
            continue
        n, b = statistics.median(now), statistics.median(base)
        rows.append("%-22s %10.0f %10.0f %6.3f  %s" % (title, n, b, n / b, "PASS" if n / b >= 0.97 else "BELOW TARGET (0.97)"))
    space_now = [r["store_bytes"] for r in res if r["server"] == "hlfs" and r["job"] == "randread"]
    space_base = [r["store_bytes"] for r in res if r["server"] == "hlfs-base" and r["job"] == "randread"]
    if space_now and space_base:
        o = statistics.median(space_now) / statistics.median(space_base) - 1
        rows.append("%-22s %10d %10d %+5.2f%%  %s" % ("store bytes after fill", statistics.median(space_now),
                                                     statistics.median(space_base), 100 * o,
                                                     "PASS" if o <= 0.002 else "BELOW TARGET (<= 0.2%)"))
    return rows


def scrub(tmp):
    size = parse_size(os.environ.get("BENCH_SCRUB_SIZE", "512M"))
    store = os.path.join(tmp, "scrub-store")
    img = os.path.join(tmp, "scrub.img")
    with open(img, "wb") as f:
        for _ in range(size // (1 << 20)):
            f.write(os.urandom(1 << 20))
    run([HLFS, "--store", "file://" + store, "create", "s", "--size", str(size)])
    run([HLFS, "--store", "file://" + store, "import", img, "s"])
    os.remove(img)
    segs = sorted(os.path.join(store, "s", "seg", n) for n in os.listdir(os.path.join(store, "s", "seg")))
    seg_bytes = sum(os.path.getsize(p) for p in segs)

    def evict():
        # Out of the page cache, so both read the device (drop_caches needs
        # privileges; fadvise on clean pages does not).
        os.sync()
        for p in segs:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)

    def cat():
        evict()
        t = time.time()
        for p in segs:
            with open(p, "rb") as f:
                while f.read(8 << 20):
                    pass
        return seg_bytes / (time.time() - t) / 1e6

    cats, scrubs = [], []
    for _ in range(3):
        cats.append(cat())
        evict()
        t = time.time()
        out = run([HLFS, "--store", "file://" + store, "scrub", "s"])
        scrubs.append(seg_bytes / (time.time() - t) / 1e6)
        if "no damage" not in out:
            sys.exit("bench: scrub found damage in a fresh volume: " + out)
    c, s = statistics.median(cats), statistics.median(scrubs)
    return ["%-22s %10.0f %10.0f %6.3f  %s" % ("scrub vs seq read MB/s", s, c, s / c, "PASS" if s / c >= 0.5 else "BELOW TARGET (0.5)")]


def main():
    if not os.access(HLFS, os.X_OK):
        sys.exit("bench: build bin/hlfs first (make build)")
    tmp = tempfile.mkdtemp(prefix="hlfs-checksums-")
    try:
        base = build_base(tmp)
        rows = reads(base, tmp) + scrub(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("block checksums: hlfs now vs hlfs at %s (before them), same run, medians" % BASE_REV)
    print("%-22s %10s %10s %6s" % ("row", "now", "base", "ratio"))
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
