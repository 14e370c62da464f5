#!/usr/bin/env python3
"""Incremental backup: hlfs against a full copy and qcow2's dirty bitmaps, same run.

A 1 GiB volume (BENCH_BACKUP_SIZE) full of random data, a snapshot s1, then 1%
(BENCH_BACKUP_CHANGE) of its 4 KiB blocks overwritten at random through NBD
and a snapshot s2. The same image as qcow2 with two persistent dirty bitmaps
(`qemu-img bitmap --add`: b64k at qcow2's default granularity, the 64 KiB
cluster, and b4k at 4 KiB), the same blocks written through qemu-nbd, then
served read-only with `qemu-nbd -B`. Each way of taking the backup of what
changed since s1 is timed, and the bytes its server (or, for the CLI, the
process itself) read are counted (rchar in /proc/PID/io: every byte read
through read/pread, store objects, map objects and data alike; the page cache
is warm for everyone):

  hlfs export-diff         `hlfs export-diff vol@s2 --from-snap s1 FILE` (offline CLI)
  hlfs NBD bitmap          a libnbd client on vol@s2 with qemu:dirty-bitmap:s1:
                           block status, then a read of every dirty range
  hlfs full nbdcopy        `nbdcopy nbd://.../vol@s2 null:` (what backup cost before)
  qemu-nbd qcow2 b64k      the same client on `qemu-nbd -r -B b64k`
  qemu-nbd qcow2 b4k       the same client on `qemu-nbd -r -B b4k`
  qemu-nbd qcow2 nbdcopy   `nbdcopy` of the whole qcow2 image

Target: hlfs reads at most 2% of the volume for the incremental backup.
Environment: BENCH_BACKUP_SIZE, BENCH_BACKUP_CHANGE, BENCH_BACKUP_ROUNDS
(default 3), BENCH_DIR. A report, never a failing exit for performance.
"""

import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HLFS = os.path.join(REPO, "bin", "hlfs")
BLOCK = 4096


def parse_size(s):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %d" % proc.returncode)
        try:
            # The greeting, not just the connection: hlfs serve listens
            # before it opens its volumes and greets once they are open.
            with socket.create_connection(("127.0.0.1", port), 0.2) as c:
                c.settimeout(0.2)
                if c.recv(8) == b"NBDMAGIC":
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("server did not listen on %d" % port)


def rchar(pid="self"):
    with open("/proc/%s/io" % pid) as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return 0


def libnbd_python():
    for py in (sys.executable, "python3", "/usr/bin/python3"):
        if shutil.which(py) and subprocess.run([py, "-c", "import nbd"], capture_output=True).returncode == 0:
            return py
    raise SystemExit("no python3 can import nbd (apt-get install python3-libnbd)")


# Writes 4 KiB of random data at each block offset given on stdin.
WRITER = r"""
import nbd, os, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
for line in sys.stdin:
    h.pwrite(os.urandom(4096), int(line))
h.flush()
h.shutdown()
"""

# A backup client: block status of one dirty bitmap over the export, then a
# read of every dirty range into a sparse file. Prints what it saw.
BACKUP = r"""
import json, nbd, sys
uri, ctx, out = sys.argv[1], sys.argv[2], sys.argv[3]
h = nbd.NBD()
h.add_meta_context(ctx)
h.connect_uri(uri)
assert h.can_meta_context(ctx), ctx
size = h.get_size()
dirty = []
pos = 0
while pos < size:
    got = []
    def cb(meta, off, entries, err):
        if meta == ctx:
            got.extend(entries)
    h.block_status(min(size - pos, 1 << 30), pos, cb)
    for i in range(0, len(got), 2):
        n, flags = got[i], got[i + 1]
        if flags & 1:
            if dirty and dirty[-1][0] + dirty[-1][1] == pos:
                dirty[-1][1] += n
            else:
                dirty.append([pos, n])
        pos += n
with open(out, "wb") as f:
    f.truncate(size)
    for off, n in dirty:
        for p in range(off, off + n, 32 << 20):
            k = min(32 << 20, off + n - p)
            f.seek(p)
            f.write(h.pread(k, p))
h.shutdown()
print(json.dumps({"ranges": len(dirty), "dirty_bytes": sum(n for _, n in dirty)}))
"""


class Proc:
    """A long-running server whose reads are counted."""

    def __init__(self, cmd, port, log_path):
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        wait_port(port, self.p)

    def rchar(self):
        return rchar(self.p.pid)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.log.close()


def measure_server(server, fn):
    before = server.rchar()
    t0 = time.time()
    info = fn()
    return time.time() - t0, server.rchar() - before, info


def measure_self(cmd):
    before = rchar()
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The child was reaped: its reads were added to ours.
    return time.time() - t0, rchar() - before, None


def human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return "%.1f %s" % (n, unit) if unit != "B" else "%d B" % n
        n /= 1024.0


def main():
    size = parse_size(os.environ.get("BENCH_BACKUP_SIZE", "1G"))
    change = float(os.environ.get("BENCH_BACKUP_CHANGE", "0.01"))
    rounds = int(os.environ.get("BENCH_BACKUP_ROUNDS", "3"))
    if not os.path.exists(HLFS):
        raise SystemExit("build bin/hlfs first (make build)")
    py = libnbd_python()
    tmp = tempfile.mkdtemp(prefix="hlfs-bench-backup-", dir=os.environ.get("BENCH_DIR"))
    servers = []
    try:
        store = os.path.join(tmp, "store")
        raw = os.path.join(tmp, "base.raw")
        log("writing %s of random data" % human(size))
        with open(raw, "wb") as f:
            for _ in range(size // (16 << 20)):
                f.write(os.urandom(16 << 20))
            f.truncate(size)
        run([HLFS, "--store", store, "create", "vol", "--size", str(size)])
        run([HLFS, "--store", store, "import", raw, "vol"])
        run([HLFS, "--store", store, "snapshot", "create", "vol@s1"])
        qcow = os.path.join(tmp, "img.qcow2")
        run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow])
        os.remove(raw)
        run(["qemu-img", "bitmap", "--add", qcow, "b64k"])
        run(["qemu-img", "bitmap", "--add", "--granularity", "4K", qcow, "b4k"])

        rng = random.Random(1)
        nblocks = int(size // BLOCK * change)
        offsets = "".join("%d\n" % (b * BLOCK) for b in rng.sample(range(size // BLOCK), nblocks))
        log("writing %d random 4 KiB blocks (%.1f%%) to both" % (nblocks, 100 * change))

        hport = free_port()
        admin = os.path.join(tmp, "admin.sock")
        hserve = Proc([HLFS, "--store", store, "serve", "--listen", "127.0.0.1:%d" % hport,
                       "--admin-socket", admin, "--no-gc"], hport, os.path.join(tmp, "hlfs.log"))
        servers.append(hserve)
        subprocess.run([py, "-c", WRITER, "nbd://127.0.0.1:%d/vol" % hport], input=offsets, text=True, check=True)
        run([HLFS, "--store", store, "snapshot", "create", "vol@s2"])
        out = os.path.join(tmp, "out")
        # While the server still holds the new writes in memory and no
        # checkpoint covers them: a read-only open replays that log tail.
        tail = measure_self([HLFS, "--store", store, "export-diff", "vol@s2", "--from-snap", "s1", out])
        log("hlfs export-diff before a checkpoint: %.3f s, read %s" % (tail[0], human(tail[1])))
        # The backup runs later: a restarted server reads everything from the store.
        hserve.stop()
        servers.remove(hserve)
        hserve = Proc([HLFS, "--store", store, "serve", "--listen", "127.0.0.1:%d" % hport,
                       "--admin-socket", admin, "--no-gc"], hport, os.path.join(tmp, "hlfs.log"))
        servers.append(hserve)

        qport = free_port()
        qw = Proc(["qemu-nbd", "-f", "qcow2", "--cache=writeback", "-x", "img", "-b", "127.0.0.1",
                   "-p", str(qport), "--persistent", qcow], qport, os.path.join(tmp, "qemu-nbd.log"))
        subprocess.run([py, "-c", WRITER, "nbd://127.0.0.1:%d/img" % qport], input=offsets, text=True, check=True)
        qw.stop()
        qport = free_port()
        qserve = Proc(["qemu-nbd", "-r", "-f", "qcow2", "-x", "img", "-b", "127.0.0.1", "-p", str(qport),
                       "--persistent", "--shared=4", "-B", "b64k", "-B", "b4k", qcow], qport,
                      os.path.join(tmp, "qemu-nbd.log"))
        servers.append(qserve)

        hsnap = "nbd://127.0.0.1:%d/vol@s2" % hport
        qimg = "nbd://127.0.0.1:%d/img" % qport

        def client(uri, ctx):
            return lambda: json.loads(run([py, "-c", BACKUP, uri, ctx, out]))

        def nbdcopy(uri):
            return lambda: run(["nbdcopy", uri, "null:"]) and None

        ways = [
            ("hlfs export-diff", lambda: measure_self([HLFS, "--store", store, "export-diff", "vol@s2",
                                                        "--from-snap", "s1", out])),
            ("hlfs NBD bitmap", lambda: measure_server(hserve, client(hsnap, "qemu:dirty-bitmap:s1"))),
            ("hlfs full nbdcopy", lambda: measure_server(hserve, nbdcopy(hsnap))),
            ("qemu-nbd qcow2 b64k", lambda: measure_server(qserve, client(qimg, "qemu:dirty-bitmap:b64k"))),
            ("qemu-nbd qcow2 b4k", lambda: measure_server(qserve, client(qimg, "qemu:dirty-bitmap:b4k"))),
            ("qemu-nbd qcow2 nbdcopy", lambda: measure_server(qserve, nbdcopy(qimg))),
        ]
        results = {name: [] for name, _ in ways}
        for r in range(rounds):
            order = ways[r % len(ways):] + ways[:r % len(ways)]
            for name, fn in order:
                secs, nread, info = fn()
                results[name].append((secs, nread, info))
                log("round %d %-24s %6.3f s  read %s %s" % (r + 1, name, secs, human(nread), info or ""))

        changed = nblocks * BLOCK
        print("Incremental backup of a %s volume, %d random 4 KiB blocks (%s, %.1f%%) changed since the last "
              "snapshot; %d rounds, medians; page cache warm" % (human(size), nblocks, human(changed), 100 * change, rounds))
        print("load average at the end: %s" % open("/proc/loadavg").read().split()[0])
        print("%-24s %15s %12s %9s %12s  %s" % ("way", "time s med/min", "read", "read/vol", "dirty", "target (read <= 2% of the volume)"))
        for name, _ in ways:
            rs = results[name]
            secs = "%.3f/%.3f" % (statistics.median(x[0] for x in rs), min(x[0] for x in rs))
            nread = statistics.median(x[1] for x in rs)
            info = rs[-1][2]
            dirty = human(info["dirty_bytes"]) if info else "-"
            verdict = ""
            if name.startswith("hlfs") and "full" not in name:
                verdict = "PASS" if nread <= 0.02 * size else "BELOW TARGET"
            print("%-24s %15s %12s %8.2f%% %12s  %s" % (name, secs, human(nread), 100.0 * nread / size, dirty, verdict))
        print("%-24s %15.3f %12s %8.2f%% %12s  (once, before the server's checkpoint: the read-only open replays the log tail)"
              % ("hlfs export-diff, tail", tail[0], human(tail[1]), 100.0 * tail[1] / size, "-"))
        print("changed bytes: %s; hlfs's bitmap is exact (dirty = changed), qcow2's is per granule" % human(changed))
    finally:
        for s in servers:
            try:
                s.stop()
            except Exception:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
