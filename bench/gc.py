#!/usr/bin/env python3
"""Steady-state cleaner benchmark: hlfs with its background cleaner against
hlfs without one, same client, same run.

For each mode -- "gc" (`hlfs serve` with its default cleaner settings) and
"no-gc" (`hlfs serve --no-gc`) -- a fresh store and volume (BENCH_GC_SIZE,
default 1 GiB) are created and served, then through fio's nbd ioengine:

  fill       1M sequential write QD4 over the first 75% of the volume
             (BENCH_GC_FILL): the live data
  pass 1..N  4K random write QD16 over those 75%, each pass writing the
             span once (fio's random map), until BENCH_GC_OVERWRITE (3) times
             the volume size is written: 4 passes by default

Measured over the overwrite passes (the fill is excluded):

  WA(io)   bytes the server process wrote (/proc/PID/io write_bytes: bytes
           it caused to be written to the store's file system, counted as it
           dirties page-cache pages) / bytes fio wrote. The primary figure.
  WA(obj)  the same from the store side: growth of every segment, checkpoint
           and snapshot-map object seen under STORE/VOL (polled every 100 ms,
           each object's largest size; objects are write-once, so a deleted
           segment's bytes still count) / bytes fio wrote. A cross-check that
           /proc io does not over-count (bench.py saw it do so under
           fdatasync-heavy load; here the client never flushes). Split into
           =seg (log segments: the client's records and the cleaner's
           copies) +ckpt (checkpoints; snapshot maps, none here, make the
           rest).
  space    sum of the file sizes under STORE/VOL right after the last pass
           (the server still running) / live bytes (`hlfs du --json`
           live_bytes, run then too; 75% of the volume). The same du gives
           the garbage and the part of it the cleaner may not touch yet
           (reclaim_blocked_bytes: the log after the oldest kept checkpoint)
  IOPS, p99  fio's IOPS and p99 completion latency (clat) of each pass;
           "steady" is passes 2..N (by then the log has been overwritten
           once and the cleaner, when on, is copying): IOPS = their writes /
           their time, p99 = the worst pass's p99.

Also reported: segments deleted during each pass (files seen to vanish
under STORE/VOL/seg), server CPU seconds over the passes and RSS at the end.
The targets: WA(io) <= 2.0 and space <= 1.5 with the cleaner, and steady p99
with the cleaner <= 2x the steady p99 without, each marked PASS or BELOW
TARGET. Performance never makes the exit status non-zero; a failed run
(fio error, server crash) does.

Configuration (environment):
  BENCH_GC_SIZE        volume size (default 1G)
  BENCH_GC_FILL        live fraction of the volume (default 0.75)
  BENCH_GC_OVERWRITE   bytes of random 4K overwrites, in volume sizes (default 3)
  BENCH_GC_MODES       comma list of gc,no-gc (default both)
  BENCH_GC_SERVE_ARGS  extra `hlfs serve` arguments for the gc mode,
                       e.g. "--gc-rate 0"
  BENCH_ROUNDS         rounds (default 2; modes alternate, medians)
  BENCH_HLFS_BIN, BENCH_DIR, BENCH_JSON as for bench.py
"""

import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the helpers of bench.py)

MODES = {"gc": [], "no-gc": ["--no-gc"]}
TARGET_WA = 2.0
TARGET_SPACE = 1.5
TARGET_P99_RATIO = 2.0


class GCServer(bench.Server):
    """bench.Server for hlfs with extra `hlfs serve` arguments and an admin
    socket of its own (so `hlfs du` works while it serves)."""

    def __init__(self, workdir, size, hlfs_bin, serve_args):
        super().__init__("hlfs", workdir, size, hlfs_bin)
        self.serve_args = serve_args

    def prepare(self):
        cmd = super().prepare()  # [..., "serve", "--listen", ADDR, VOLUME]
        return cmd[:-1] + ["--admin-socket", os.path.join(self.dir, "admin.sock")] + \
            self.serve_args + cmd[-1:]

    def voldir(self):
        return os.path.join(self.store(), self.name)

    def hlfs(self, *args):
        return bench.run([self.hlfs_bin, "--store", "file://" + self.store()] + list(args))


def proc_io(pid):
    out = {}
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            k, v = line.split(":")
            out[k.strip()] = int(v)
    return out


class ObjectWatch:
    """Polls a volume folder every 100 ms: the largest size seen of every
    object (temporary .tmp- names skipped: they reappear renamed), and the
    segments seen to vanish."""

    def __init__(self, voldir):
        self.voldir = voldir
        self.maxsize = {}  # relative path -> largest size seen
        self.present = set()
        self.seg_deleted = 0
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.poll()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def poll(self):
        now = {}
        for root, _, files in os.walk(self.voldir):
            for f in files:
                p = os.path.join(root, f)
                rel = os.path.relpath(p, self.voldir)
                if ".tmp-" in f:
                    continue
                try:
                    now[rel] = os.stat(p).st_size
                except FileNotFoundError:
                    pass
        with self.lock:
            for rel, n in now.items():
                if n > self.maxsize.get(rel, -1):
                    self.maxsize[rel] = n
            for rel in self.present - set(now):
                if rel.startswith("seg" + os.sep):
                    self.seg_deleted += 1
            self.present = set(now)

    def loop(self):
        while not self.stop_ev.wait(0.1):
            self.poll()

    def snapshot(self):
        """(object bytes ever seen, by kind; segments deleted so far)."""
        self.poll()
        with self.lock:
            by = {}
            for rel, n in self.maxsize.items():
                kind = rel.split(os.sep, 1)[0] if os.sep in rel else "other"
                by[kind] = by.get(kind, 0) + n
            return by, self.seg_deleted

    def stop(self):
        self.stop_ev.set()
        self.thread.join()


def file_bytes(path):
    n = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                n += os.lstat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return n


def objects_written(by):
    return sum(by.get(k, 0) for k in ("seg", "ckpt", "snap"))


def measure(mode, cfg, hlfs_bin):
    args = MODES[mode] + (cfg["gc_args"] if mode == "gc" else [])
    srv = GCServer(cfg["workdir"], cfg["size"], hlfs_bin, args)
    span = cfg["span"]
    try:
        srv.start()
        pid = srv.proc.pid
        bench.fio(srv.uri, "fill", span, "write", "1M", 4)
        watch = ObjectWatch(srv.voldir())
        io0, cpu0, t0 = proc_io(pid), bench.cpu_seconds(pid), time.time()
        obj0, del0 = watch.snapshot()
        passes, written = [], 0
        while written < cfg["overwrite"]:
            j = bench.fio(srv.uri, "pass%d" % (len(passes) + 1), span, "randwrite", "4k", 16)
            w = j["write"]
            by, deleted = watch.snapshot()
            passes.append({
                "bytes": w["io_bytes"], "ios": w["total_ios"], "runtime_ms": w["runtime"],
                "iops": w["iops"],
                "p99_us": w["clat_ns"]["percentile"]["99.000000"] / 1000,
                "p999_us": w["clat_ns"]["percentile"]["99.900000"] / 1000,
                "seg_deleted": deleted - sum(p["seg_deleted"] for p in passes) - del0,
            })
            written += w["io_bytes"]
            bench.log("gc: %-5s pass %d: %.0f IOPS, p99 %.0f us, %d segments deleted, store %.0f MiB" % (
                mode, len(passes), w["iops"], passes[-1]["p99_us"], passes[-1]["seg_deleted"],
                file_bytes(srv.voldir()) / 2**20))
        io1, cpu1, t1 = proc_io(pid), bench.cpu_seconds(pid), time.time()
        obj1, del1 = watch.snapshot()
        stored = file_bytes(srv.voldir())
        rss_kb = bench.proc_status_kb(pid, "VmRSS")
        watch.stop()
        # While it still serves: where the garbage is now.
        du = json.loads(srv.hlfs("du", srv.name, "--json"))
        live = du["live_bytes"]
        srv.stop()
        if srv.exit_code != 0:
            raise RuntimeError("hlfs serve exit %s after SIGTERM: %s" % (srv.exit_code, srv.log_tail(5)))
        steady = passes[1:] or passes
        st_ios = sum(p["ios"] for p in steady)
        st_ms = sum(p["runtime_ms"] for p in steady)
        res = {
            "mode": mode, "serve_args": args, "client_bytes": written,
            "io_write_bytes": io1["write_bytes"] - io0["write_bytes"],
            "io_cancelled_bytes": io1["cancelled_write_bytes"] - io0["cancelled_write_bytes"],
            "obj_bytes": objects_written(obj1) - objects_written(obj0),
            "obj_by_kind": {k: obj1.get(k, 0) - obj0.get(k, 0) for k in obj1},
            "stored_bytes": stored, "live_bytes": live, "du": du,
            "garbage_bytes": du["garbage_bytes"], "blocked_bytes": du["reclaim_blocked_bytes"],
            "seg_deleted": del1 - del0, "passes": passes,
            "steady_iops": st_ios / (st_ms / 1000) if st_ms else 0,
            "steady_p99_us": max(p["p99_us"] for p in steady),
            "cpu_s": cpu1 - cpu0, "wall_s": t1 - t0, "rss_mb": rss_kb / 1024,
        }
        res["wa_io"] = res["io_write_bytes"] / written
        res["wa_obj"] = res["obj_bytes"] / written
        res["wa_seg"] = res["obj_by_kind"].get("seg", 0) / written
        res["wa_ckpt"] = res["obj_by_kind"].get("ckpt", 0) / written
        res["space"] = stored / live if live else float("inf")
        return res
    except Exception as e:
        alive = srv.proc is not None and srv.proc.poll() is None
        raise RuntimeError("%s\nserver %s; its log:\n%s" % (
            e, "still running" if alive else "exited", srv.log_tail())) from e
    finally:
        srv.cleanup()


def med(rs, key):
    return statistics.median(r[key] for r in rs)


def report(results, modes, cfg):
    out = []
    w = out.append
    w("")
    w("hlfs cleaner benchmark: fio %s, nbd ioengine, %s volume, %s live (%.0f%%), 4K randwrite QD16 "
      "overwrites of %s, %d round(s), medians" % (
          cfg["fio_version"], bench.human(cfg["size"]), bench.human(cfg["span"]), 100 * cfg["fill"],
          bench.human(cfg["overwrite"]), cfg["rounds"]))
    if cfg["gc_args"]:
        w("gc mode serve arguments: %s" % " ".join(cfg["gc_args"]))
    w("")
    w("%-6s %7s %7s %6s %6s %7s %9s %8s %8s %8s %6s %11s %11s %7s %6s %7s" % (
        "mode", "WA(io)", "WA(obj)", "=seg", "+ckpt", "space", "store MB", "live MB", "garb MB", "blkd MB", "segs-",
        "steady IOPS", "steady p99", "cpu s", "RSS MB", "wall s"))
    for m in modes:
        rs = [r for r in results if r["mode"] == m]
        if not rs:
            continue
        w("%-6s %7.2f %7.2f %6.2f %6.2f %7.2f %9.0f %8.0f %8.0f %8.0f %6d %11.0f %9.0fus %7.1f %6.0f %7.1f" % (
            m, med(rs, "wa_io"), med(rs, "wa_obj"), med(rs, "wa_seg"), med(rs, "wa_ckpt"), med(rs, "space"), med(rs, "stored_bytes") / 1e6,
            med(rs, "live_bytes") / 1e6, med(rs, "garbage_bytes") / 1e6, med(rs, "blocked_bytes") / 1e6,
            med(rs, "seg_deleted"), med(rs, "steady_iops"),
            med(rs, "steady_p99_us"), med(rs, "cpu_s"), med(rs, "rss_mb"), med(rs, "wall_s")))
    w("")
    w("per pass (round 1): IOPS / p99 us / segments deleted")
    for m in modes:
        rs = [r for r in results if r["mode"] == m]
        if rs:
            w("  %-6s %s" % (m, "   ".join("%d: %.0f / %.0f / %d" % (i + 1, p["iops"], p["p99_us"], p["seg_deleted"])
                                            for i, p in enumerate(rs[0]["passes"]))))
    w("")
    w("targets:")
    g = [r for r in results if r["mode"] == "gc"]
    n = [r for r in results if r["mode"] == "no-gc"]

    def line(label, val, want, ok, fmt="%.2f"):
        w("  %-44s %8s  (want %s)  %s" % (label, fmt % val, want, "PASS" if ok else "BELOW TARGET"))
    if g:
        line("write amplification, cleaner on (WA io)", med(g, "wa_io"), "<= %.1f" % TARGET_WA,
             med(g, "wa_io") <= TARGET_WA)
        line("space amplification, cleaner on", med(g, "space"), "<= %.1f" % TARGET_SPACE,
             med(g, "space") <= TARGET_SPACE)
    if g and n:
        ratio = med(g, "steady_p99_us") / med(n, "steady_p99_us")
        line("steady p99, cleaner on / off", ratio, "<= %.1fx" % TARGET_P99_RATIO, ratio <= TARGET_P99_RATIO,
             "%.2fx")
        w("  (for information) steady IOPS, cleaner on / off: %.2fx" % (
            med(g, "steady_iops") / med(n, "steady_iops")))
    elif g:
        w("  steady p99 ratio: n/a (no no-gc run)")
    return "\n".join(out)


def main():
    size = bench.parse_size(os.environ.get("BENCH_GC_SIZE", "1G"))
    fill = float(os.environ.get("BENCH_GC_FILL", "0.75"))
    span = int(size * fill) // (1 << 20) * (1 << 20)
    cfg = {
        "size": size, "fill": fill, "span": span,
        "overwrite": int(float(os.environ.get("BENCH_GC_OVERWRITE", "3")) * size),
        "rounds": int(os.environ.get("BENCH_ROUNDS", "2")),
        "gc_args": shlex.split(os.environ.get("BENCH_GC_SERVE_ARGS", "")),
    }
    modes = bench.env_list("BENCH_GC_MODES", list(MODES))
    for m in modes:
        if m not in MODES:
            sys.exit("gc: unknown mode %r (want %s)" % (m, ",".join(MODES)))
    if not shutil.which("fio"):
        sys.exit("gc: missing fio: run scripts/install-test-deps.sh")
    cfg["fio_version"] = bench.run(["fio", "--version"]).strip()
    hlfs_bin = os.environ.get("BENCH_HLFS_BIN", os.path.join(bench.REPO, "bin", "hlfs"))
    if not os.path.isabs(hlfs_bin) and not os.path.exists(hlfs_bin):
        hlfs_bin = os.path.join(bench.REPO, hlfs_bin)
    hlfs_bin = os.path.abspath(hlfs_bin)
    if not os.access(hlfs_bin, os.X_OK):
        sys.exit("gc: %s missing (go build -o bin/hlfs ./cmd/hlfs)" % hlfs_bin)

    own_dir = "BENCH_DIR" not in os.environ
    cfg["workdir"] = tempfile.mkdtemp(prefix="hlfs-gc-bench-", dir=os.environ.get("BENCH_DIR"))
    results, failures = [], []
    t0 = time.time()
    try:
        for rnd in range(cfg["rounds"]):
            order = modes[rnd % len(modes):] + modes[:rnd % len(modes)]
            for m in order:
                bench.log("gc: round %d/%d %s ..." % (rnd + 1, cfg["rounds"], m))
                try:
                    r = measure(m, cfg, hlfs_bin)
                except Exception as e:  # report, keep going
                    bench.log("gc:   FAILED: %s" % e)
                    failures.append({"mode": m, "round": rnd, "error": str(e)})
                    continue
                r["round"] = rnd
                results.append(r)
                bench.log("gc:   WA io %.2f obj %.2f, space %.2f, steady %.0f IOPS p99 %.0f us" % (
                    r["wa_io"], r["wa_obj"], r["space"], r["steady_iops"], r["steady_p99_us"]))
    finally:
        if own_dir:
            shutil.rmtree(cfg["workdir"], ignore_errors=True)
    print(report(results, modes, cfg))
    for f in failures:
        print("FAILED: %s round %d: %s" % (f["mode"], f["round"] + 1, f["error"].strip().splitlines()[0]))
    print("(%.0f s in all; performance is reported, never a failing exit)" % (time.time() - t0))
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as f:
            json.dump({"config": cfg, "results": results, "failures": failures}, f, indent=1)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
