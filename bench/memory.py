#!/usr/bin/env python3
"""Memory of `hlfs serve` with many volumes written at once (issue 11).

Creates BENCH_MEM_VOLUMES volumes (default 100) in a fresh file:// store,
serves them all from one `hlfs serve --memory BENCH_MEM_BUDGET` (default
256M), and writes BENCH_MEM_WRITE bytes (default 16M) to each from its own
client, all at once: one python3-libnbd connection per volume, in a thread
each, writing 4 MiB requests with up to 4 in flight (so the clients offer
1.6 GB of payload at once), then a FLUSH. Every volume's first and last
MiB are read back and compared. Reported: the server's peak RSS (VmHWM),
its RSS once the writes are flushed, and the write throughput; target:
peak RSS <= 512 MiB.

With BENCH_HLFS_BASE_BIN (another hlfs binary, e.g. built from the commit
before the memory budget) the same workload runs against it too, without
--memory (older binaries do not know the flag), for the before/after.

Environment: BENCH_MEM_VOLUMES, BENCH_MEM_WRITE, BENCH_MEM_BUDGET,
BENCH_HLFS_BIN, BENCH_HLFS_BASE_BIN, BENCH_DIR. A report, never a failing
exit for performance.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

try:
    import nbd
except ImportError:
    # Debian's python3-libnbd is in the system interpreter, which a pyenv
    # or venv python3 earlier on PATH cannot see: run under that one.
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("memory.py: needs python3-libnbd (import nbd); skipped")
    sys.exit(0)

TARGET = 512 << 20
REQ = 4 << 20
QD = 4


def pattern(vol, off):
    return bytes([(vol * 37 + off // REQ) % 251 + 1]) * REQ


def write_volume(uri, vol, total, errors):
    try:
        h = nbd.NBD()
        h.connect_uri(uri)
        inflight = []
        for off in range(0, total, REQ):
            while len(inflight) >= QD:
                h.poll(-1)
                inflight = [c for c in inflight if not h.aio_command_completed(c)]
            inflight.append(h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(pattern(vol, off))), off))
        while inflight:
            h.poll(-1)
            inflight = [c for c in inflight if not h.aio_command_completed(c)]
        h.flush()
        for off in (0, total - REQ):
            want = pattern(vol, off)[:1 << 20]
            if h.pread(1 << 20, off) != want:
                raise RuntimeError("volume %d: wrong data at %d" % (vol, off))
        h.shutdown()
    except Exception as e:  # reported, the other volumes go on
        errors.append("volume %d: %s" % (vol, e))


def run_one(label, hlfs_bin, budget, vols, total, workdir):
    d = tempfile.mkdtemp(prefix="mem-", dir=workdir)
    store = "file://" + os.path.join(d, "store")
    for i in range(vols):
        bench.run([hlfs_bin, "--store", store, "create", "m%d" % i, "--size", bench.human(max(total, 64 << 20))])
    port = bench.free_port()
    cmd = [hlfs_bin, "--store", store, "serve", "--listen", "127.0.0.1:%d" % port]
    if budget:
        cmd += ["--memory", budget]
    logf = open(os.path.join(d, "serve.log"), "w")
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while True:
            try:
                h = nbd.NBD()
                h.connect_uri("nbd://127.0.0.1:%d/m0" % port)
                h.shutdown()
                break
            except nbd.Error:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("serve did not start; see %s" % logf.name)
                time.sleep(0.1)
        start_rss = bench.proc_status_kb(proc.pid, "VmRSS") << 10
        errors = []
        threads = [threading.Thread(target=write_volume,
                                    args=("nbd://127.0.0.1:%d/m%d" % (port, i), i, total, errors))
                   for i in range(vols)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        secs = time.time() - t0
        res = dict(label=label, budget=budget or "-", start=start_rss,
                   peak=bench.proc_status_kb(proc.pid, "VmHWM") << 10,
                   after=bench.proc_status_kb(proc.pid, "VmRSS") << 10,
                   mbs=vols * total / secs / 1e6, errors=errors,
                   load=" ".join("%.1f" % x for x in os.getloadavg()))
    finally:
        proc.send_signal(2)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logf.close()
        shutil.rmtree(d, ignore_errors=True)
    return res


def main():
    vols = int(os.environ.get("BENCH_MEM_VOLUMES", "100"))
    total = bench.parse_size(os.environ.get("BENCH_MEM_WRITE", "16M"))
    budget = os.environ.get("BENCH_MEM_BUDGET", "256M")
    hlfs_bin = bench.hlfs_binary()
    if not os.path.exists(hlfs_bin):
        print("memory.py: no %s; build it first (make build)" % hlfs_bin)
        return 1
    workdir = os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="hlfs-mem-bench-")
    runs = [("hlfs", hlfs_bin, budget)]
    if os.environ.get("BENCH_HLFS_BASE_BIN"):
        runs.append(("hlfs-base", os.environ["BENCH_HLFS_BASE_BIN"], None))
    print("Memory: %d volumes, %s written to each at once (4 MiB writes, QD%d per client), then FLUSH"
          % (vols, bench.human(total), QD))
    print("%-10s %-9s %10s %10s %12s %9s  %s" % ("server", "--memory", "RSS start", "RSS peak", "RSS flushed", "MB/s", "target peak <= 512 MiB"))
    failed = False
    for label, b, m in runs:
        r = run_one(label, b, m, vols, total, workdir)
        verdict = "PASS" if r["peak"] <= TARGET else "ABOVE TARGET"
        if label != "hlfs":
            verdict = "(before)"
        print("%-10s %-9s %7d MiB %7d MiB %9d MiB %9.0f  %s (load average %s)" % (
            label, r["budget"], r["start"] >> 20, r["peak"] >> 20, r["after"] >> 20, r["mbs"], verdict, r["load"]))
        for e in r["errors"]:
            print("  ERROR " + e)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
