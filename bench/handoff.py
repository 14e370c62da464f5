#!/usr/bin/env python3
"""Hand-off latency through two `hlfs serve` processes (issue 12): the extra
downtime a live migration pays when the destination's first write moves the
volume.

Two servers on one store act as two hosts (HLFS_HOSTNAME=host-a and host-b,
their own ports); a python-libnbd client is connected to both. Each of
BENCH_HANDOFFS (50) rounds writes 1 MiB in 4 KiB random writes on the owner
without flushing (the state a source guest leaves at switchover), then times
the first 4 KiB write on the other server: the standby's serve asks the
owner over its NBD listener, the owner flushes, checkpoints if that pays and
releases the lock, the standby takes the lock and replays the tail, and the
write completes. The sides alternate. Reported: p50, p99 and max of those
first writes, against the issue's targets (p99 <= 200 ms on the local
store, <= 2 s on HDFS), marked PASS or BELOW TARGET; performance never makes
the exit status non-zero, a failed run does.

Stores: "local" (file:// in BENCH_DIR or a temporary directory) always;
"hdfs" too when HLFS_HDFS_URI is set (make bench-hdfs runs it under
scripts/with-hdfs.sh). BENCH_HANDOFF_STORES picks (comma list).

Environment: BENCH_HANDOFFS (50), BENCH_HANDOFF_STORES, BENCH_HLFS_BIN,
BENCH_DIR, BENCH_JSON (as bench.py).
"""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the helpers of bench.py)

try:
    import nbd  # noqa: E402  (python3-libnbd)
except ImportError:
    # Debian's python3-libnbd is in the system interpreter, which a pyenv
    # or venv python3 earlier on PATH cannot see.
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

VOL = "roam"
SIZE = 256 << 20
TARGETS = {"local": 0.2, "hdfs": 2.0}


class Serve:
    def __init__(self, hlfs, store, host, logdir):
        self.port = bench.free_port()
        self.host = host
        self.log = os.path.join(logdir, host + ".log")
        env = dict(os.environ, HLFS_HOSTNAME=host)
        self.proc = subprocess.Popen(
            [hlfs, "--store", store, "serve", "--listen", "127.0.0.1:%d" % self.port,
             "--admin-socket", "none", VOL],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 60
        while not bench.nbd_greets(self.port):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("%s did not come up:\n%s" % (host, self.tail()))
            time.sleep(0.02)

    def uri(self):
        return "nbd://127.0.0.1:%d/%s" % (self.port, VOL)

    def tail(self, n=20):
        with open(self.log) as f:
            return "".join(f.readlines()[-n:])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def measure(hlfs, store, n, workdir):
    bench.run([hlfs, "--store", store, "create", VOL, "--size", str(SIZE)])
    servers = [Serve(hlfs, store, "host-a", workdir), Serve(hlfs, store, "host-b", workdir)]
    try:
        hs = []
        for s in servers:
            h = nbd.NBD()
            h.connect_uri(s.uri())
            hs.append(h)
        rng = random.Random(1)
        blocks = SIZE // 4096
        buf = os.urandom(4096)
        hs[0].pwrite(buf, 0)  # host-a owns it from the start
        hs[0].flush()
        lat = []
        for i in range(n):
            owner, standby = hs[i % 2], hs[1 - i % 2]
            for _ in range(256):
                owner.pwrite(buf, rng.randrange(blocks) * 4096)
            t0 = time.perf_counter()
            standby.pwrite(buf, rng.randrange(blocks) * 4096)
            lat.append(time.perf_counter() - t0)
            standby.flush()
        for h in hs:
            h.shutdown()
        return lat
    except Exception:
        for s in servers:
            bench.log("%s log tail:\n%s" % (s.host, s.tail()))
        raise
    finally:
        for s in servers:
            s.stop()


def main():
    t0 = time.time()
    hlfs = bench.hlfs_binary()
    if not os.path.exists(hlfs):
        print("handoff: no hlfs binary at %s (make build); skipped" % hlfs)
        return 0
    n = int(os.environ.get("BENCH_HANDOFFS", "50"))
    stores = ["local"] + (["hdfs"] if os.environ.get("HLFS_HDFS_URI") else [])
    stores = bench.env_list("BENCH_HANDOFF_STORES", stores)
    doc = {"handoffs": n, "results": {}}
    failed = False
    for kind in stores:
        workdir = tempfile.mkdtemp(prefix="hlfs-handoff-", dir=os.environ.get("BENCH_DIR"))
        if kind == "hdfs":
            store = "%s/hlfs-bench/handoff-%d-%06d" % (os.environ["HLFS_HDFS_URI"].rstrip("/"),
                                                      os.getpid(), random.randrange(10**6))
        else:
            store = "file://" + os.path.join(workdir, "store")
        try:
            lat = measure(hlfs, store, n, workdir)
        except Exception as e:  # noqa: BLE001  (reported, then the exit status)
            print("handoff %s: FAILED: %s" % (kind, e))
            failed = True
            continue
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            if kind == "hdfs":
                subprocess.run([hlfs, "--store", store, "rm", VOL], capture_output=True)
        p50, p99, mx = percentile(lat, 50), percentile(lat, 99), max(lat)
        verdict = "PASS" if p99 <= TARGETS[kind] else "BELOW TARGET"
        print("handoff %-5s %d hand-offs: p50 %6.1f ms  p99 %7.1f ms  max %7.1f ms  (target p99 <= %.0f ms: %s)"
              % (kind, n, p50 * 1e3, p99 * 1e3, mx * 1e3, TARGETS[kind] * 1e3, verdict))
        doc["results"][kind] = {"p50_s": p50, "p99_s": p99, "max_s": mx, "all_s": lat}
    try:
        load = os.getloadavg()[0]
        print("(load average %.1f; %.0f s in all; performance is reported, never a failing exit)"
              % (load, time.time() - t0))
    except OSError:
        pass
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as f:
            json.dump(doc, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
