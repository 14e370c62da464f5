#!/usr/bin/env python3
"""Snapshot and clone benchmark: hlfs against qcow2 chains, same client, same run.

Three measurements, each a report (performance never fails the exit status):

  depth       4K random read QD16 (fio nbd ioengine) through clone chains of
              depth 0, 8, 32 and 64. hlfs: a base volume d0 filled
              sequentially over the span, then per level `hlfs snapshot create
              d{N-1}@s` and `hlfs clone d{N-1}@s dN`, and a 4 KiB write of the
              clone's own at N MiB; `hlfs serve dN` for each depth measured.
              qcow2: the same fill into base.qcow2 (through qemu-nbd), then
              `qemu-img create -f qcow2 -b prev -F qcow2` per level with the
              same 4 KiB write (qemu-io), the top served by qemu-nbd
              --cache=writeback. Reports depth/0 ratios (target for hlfs:
              depth 64 >= 0.9x depth 0) and hlfs/qcow2 at every depth.
  create      wall time of `hlfs snapshot create VOL@sK` run against a
              volume that `hlfs serve` holds, so it goes through the server's
              admin socket (checked in the server's log), after 1 GiB and
              10 GiB were written sequentially (fio 1M QD4); the median of
              BENCH_SNAP_REPS snapshots with a 4 KiB write before each, and the
              wall time of `hlfs version` (process start alone) for
              comparison. Target: median under 50 ms whatever the size.
              With BENCH_SNAP_ENGINE=1 also `go test -bench
              BenchmarkSnapshotCreate ./lfs/` (engine-level; `make bench`
              already runs every lfs benchmark once).
  firstwrite  4K random write QD16 for BENCH_RUNTIME seconds into a fresh
              hlfs clone of a filled base, a fresh empty hlfs volume, a fresh
              qcow2 overlay on a filled qcow2 base (64 KiB clusters: the first
              write to a cluster copies it up) and, for information, a fresh
              qcow2 without backing file. "passes" is bytes written / span:
              above 1 the run also overwrote. Target: the hlfs clone >= 0.9x
              the plain volume (clones share by map, not by copy-on-write).

Rounds repeat the timed runs (systems alternate, the first rotates); the
report gives medians. Builds (fills, chains) happen once.

Configuration (environment):
  BENCH_SECTIONS      comma list of depth,create,firstwrite (default all)
  BENCH_RUNTIME       seconds per timed run (default 5)
  BENCH_ROUNDS        rounds (default 2)
  BENCH_SPAN          span filled and read in the depth runs (default 256M)
  BENCH_DEPTHS        clone depths to measure (default 0,8,32,64)
  BENCH_SNAP_SIZES    sizes written before snapshot create: numbers are GiB,
                      or give a suffix (default 1,10; e.g. 256M,1G to save time)
  BENCH_SNAP_REPS     snapshots per size (default 5)
  BENCH_FW_SPAN       span of the first-write runs, filled in the bases
                      (default 1G)
  BENCH_SNAP_ENGINE   1: also run the engine-level BenchmarkSnapshotCreate
  BENCH_HLFS_BIN      hlfs binary (default <repo>/bin/hlfs)
  BENCH_DIR           where stores and images live (default a temp dir)
  BENCH_JSON          also write all raw results to this file
"""

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import REPO, cpu_seconds, fio, free_port, human, log, nbd_greets, parse_size, run  # noqa: E402

SECTIONS = ["depth", "create", "firstwrite"]
CREATE_TARGET_MS = 50.0
DEPTH_TARGET = 0.9
FIRSTWRITE_TARGET = 0.9
FW_SYSTEMS = ["hlfs-clone", "hlfs-plain", "qcow2-overlay", "qcow2-plain"]
FW_TITLES = {
    "hlfs-clone": "hlfs clone of a filled base",
    "hlfs-plain": "hlfs empty volume",
    "qcow2-overlay": "qcow2 overlay on a filled base",
    "qcow2-plain": "qcow2 empty, no backing",
}


class Proc:
    """One NBD server process on a loopback port."""

    def __init__(self, cmd, port, log_path):
        self.cmd, self.port, self.log_path = cmd, port, log_path
        self.logf = open(log_path, "a")
        self.logf.write("=== start: %s\n" % " ".join(cmd))
        self.logf.flush()
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited during start-up:\n%s" % (cmd[0], self.log_tail()))
            if nbd_greets(port):
                return
            if time.time() > deadline:
                self.proc.kill()
                raise RuntimeError("%s not listening after 60 s:\n%s" % (cmd[0], self.log_tail()))
            time.sleep(0.02)

    def uri(self, name):
        return "nbd://127.0.0.1:%d/%s" % (self.port, name)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("%s ignored SIGTERM for 120 s" % self.cmd[0])
        self.logf.close()
        if self.proc.returncode != 0:
            raise RuntimeError("%s exited %d:\n%s" % (self.cmd[0], self.proc.returncode, self.log_tail()))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n=20):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()


class HLFS:
    """A file:// store under dir and the hlfs command line on it."""

    def __init__(self, binary, dir):
        self.bin, self.dir = binary, dir
        self.store = os.path.join(dir, "store")
        os.makedirs(self.store, exist_ok=True)
        self.n = 0

    def cli(self, *args):
        return run([self.bin, "--store", "file://" + self.store] + list(args))

    def serve(self, *exports):
        self.n += 1
        port = free_port()
        adm = os.path.join(self.dir, "adm%d.sock" % self.n)
        cmd = [self.bin, "--store", "file://" + self.store, "serve", "--listen", "127.0.0.1:%d" % port,
               "--admin-socket", adm] + list(exports)
        return Proc(cmd, port, os.path.join(self.dir, "serve.log"))


def qemu_nbd(image, fmt, dir, name="bench"):
    port = free_port()
    cmd = ["qemu-nbd", "-f", fmt, "-x", name, "-b", "127.0.0.1", "-p", str(port),
           "--persistent", "--shared=16", "--cache=writeback", image]
    return Proc(cmd, port, os.path.join(dir, "qemu-nbd.log"))


def qemu_io(target, fmt, *cmds):
    args = ["qemu-io", "-f", fmt, target]
    for c in cmds:
        args += ["-c", c]
    out = run(args)
    if "failed" in out:
        raise RuntimeError("qemu-io %s: %s" % ("; ".join(cmds), out))
    return out


def fill(uri, span):
    return fio(uri, "fill", span, "write", "1M", 4)


def timed(proc, uri, name, span, rw, runtime):
    """A timed 4K QD16 fio run; also the server's CPU time per I/O, which
    varies less than IOPS when other work shares the CPUs."""
    cpu0 = cpu_seconds(proc.proc.pid)
    j = fio(uri, name, span, rw, "4k", 16, 0, runtime)
    cpu = cpu_seconds(proc.proc.pid) - cpu0
    side = j["read"] if rw.endswith("read") else j["write"]
    ios = side["io_bytes"] / 4096
    return {
        "iops": side["iops"], "mbps": side["bw_bytes"] / 1e6,
        "p99_us": side.get("clat_ns", {}).get("percentile", {}).get("99.000000", 0) / 1000,
        "io_bytes": side["io_bytes"], "cpu_s": cpu, "cpu_us_per_io": cpu / ios * 1e6 if ios else None,
    }


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def rotate(xs, r):
    return xs[r % len(xs):] + xs[:r % len(xs)] if xs else []


# --- depth -------------------------------------------------------------------

def build_hlfs_chain(h, depth, size, span):
    log("snapbench: hlfs chain: fill d0 (%s), then %d levels" % (human(span), depth))
    h.cli("create", "d0", "--size", human(size))
    p = h.serve("d0")
    try:
        fill(p.uri("d0"), span)
    finally:
        p.stop()
    t0 = time.time()
    for d in range(1, depth + 1):
        prev, cur = "d%d" % (d - 1), "d%d" % d
        h.cli("snapshot", "create", prev + "@s")
        h.cli("clone", prev + "@s", cur)
        p = h.serve(cur)
        try:
            qemu_io(p.uri(cur), "raw", "write -P %d %dM 4k" % (d % 255 + 1, d))
        finally:
            p.stop()
    log("snapbench: hlfs chain of %d built in %.1f s" % (depth, time.time() - t0))


def build_qcow2_chain(dir, depth, size, span):
    log("snapbench: qcow2 chain: fill base (%s), then %d levels" % (human(span), depth))
    base = os.path.join(dir, "q0.qcow2")
    run(["qemu-img", "create", "-q", "-f", "qcow2", base, str(size)])
    p = qemu_nbd(base, "qcow2", dir)
    try:
        fill(p.uri("bench"), span)
    finally:
        p.stop()
    t0 = time.time()
    for d in range(1, depth + 1):
        prev, cur = os.path.join(dir, "q%d.qcow2" % (d - 1)), os.path.join(dir, "q%d.qcow2" % d)
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", prev, "-F", "qcow2", cur])
        qemu_io(cur, "qcow2", "write -P %d %dM 4k" % (d % 255 + 1, d))
    log("snapbench: qcow2 chain of %d built in %.1f s" % (depth, time.time() - t0))


def run_depth(cfg, hlfs_bin, results):
    depths = cfg["depths"]
    top = max(depths)
    wd = tempfile.mkdtemp(prefix="depth-", dir=cfg["workdir"])
    h = HLFS(hlfs_bin, os.path.join(wd, "hlfs"))
    qdir = os.path.join(wd, "qcow2")
    os.makedirs(qdir)
    build_hlfs_chain(h, top, cfg["size"], cfg["span"])
    build_qcow2_chain(qdir, top, cfg["size"], cfg["span"])
    systems = ["hlfs", "qcow2"]
    for rnd in range(cfg["rounds"]):
        for d in rotate(depths, rnd):
            for sysname in rotate(systems, rnd):
                log("snapbench: round %d/%d randread depth %-3d %s ..." % (rnd + 1, cfg["rounds"], d, sysname))
                if sysname == "hlfs":
                    p = h.serve("d%d" % d)
                    uri = p.uri("d%d" % d)
                else:
                    p = qemu_nbd(os.path.join(qdir, "q%d.qcow2" % d), "qcow2", qdir)
                    uri = p.uri("bench")
                try:
                    r = timed(p, uri, "randread-d%d" % d, cfg["span"], "randread", cfg["runtime"])
                finally:
                    p.stop()
                r.update(section="depth", system=sysname, depth=d, round=rnd)
                results.append(r)
                log("snapbench:   %.0f IOPS p99 %.0f us, server %.1f us CPU/IO" % (r["iops"], r["p99_us"], r["cpu_us_per_io"]))
    shutil.rmtree(wd, ignore_errors=True)


# --- create ------------------------------------------------------------------

def wall_ms(cmd):
    t0 = time.perf_counter()
    run(cmd)
    return (time.perf_counter() - t0) * 1000


def run_create(cfg, hlfs_bin, results):
    base_ms = [wall_ms([hlfs_bin, "version"]) for _ in range(5)]
    results.append({"section": "create", "what": "process", "ms": base_ms})
    for size in cfg["snap_sizes"]:
        wd = tempfile.mkdtemp(prefix="create-", dir=cfg["workdir"])
        h = HLFS(hlfs_bin, wd)
        h.cli("create", "vol", "--size", human(size + (1 << 30)))
        p = h.serve("vol")
        try:
            log("snapbench: snapshot create: writing %s ..." % human(size))
            t0 = time.time()
            fill(p.uri("vol"), size)
            log("snapbench:   written in %.1f s" % (time.time() - t0))
            times = []
            for k in range(cfg["snap_reps"]):
                # A little new data before each snapshot, as a live guest has.
                qemu_io(p.uri("vol"), "raw", "write -P %d %d 4k" % (k + 1, k * 4096))
                times.append(wall_ms([hlfs_bin, "--store", "file://" + h.store, "snapshot", "create", "vol@s%d" % k]))
            via_admin = all('created snapshot vol@s%d"' % k in p.log_text() for k in range(cfg["snap_reps"]))
        finally:
            p.stop()
        r = {"section": "create", "what": "cli", "size": size, "ms": times, "via_admin": via_admin}
        results.append(r)
        log("snapbench:   snapshot create %s: median %.1f ms, max %.1f ms%s" % (
            human(size), med(times), max(times), "" if via_admin else " (NOT through the admin socket)"))
        shutil.rmtree(wd, ignore_errors=True)
    if cfg["engine"]:
        # The engine benchmark has 1 GiB and 10 GiB cases: run those asked for.
        gibs = [str(g) for g in (1, 10) if g << 30 in cfg["snap_sizes"]] or ["1"]
        pattern = "BenchmarkSnapshotCreate/(%s)GiB-written$" % "|".join(gibs)
        log("snapbench: go test -bench '%s' ./lfs/ ..." % pattern)
        out = run(["go", "test", "-run", "^$", "-bench", pattern, "-benchtime", "5x", "./lfs/"], cwd=REPO)
        for m in re.finditer(r"BenchmarkSnapshotCreate/(\S+?)(?:-\d+)?\s+\d+\s+(\d+(?:\.\d+)?) ns/op(.*)", out):
            worst = re.search(r"([\d.]+) ms-worst", m.group(3))
            results.append({"section": "create", "what": "engine", "case": m.group(1),
                            "ms_per_op": float(m.group(2)) / 1e6,
                            "ms_worst": float(worst.group(1)) if worst else None})


# --- firstwrite --------------------------------------------------------------

def run_firstwrite(cfg, hlfs_bin, results):
    span, size = cfg["fw_span"], max(cfg["size"], cfg["fw_span"])
    wd = tempfile.mkdtemp(prefix="firstwrite-", dir=cfg["workdir"])
    h = HLFS(hlfs_bin, os.path.join(wd, "hlfs"))
    qdir = os.path.join(wd, "qcow2")
    os.makedirs(qdir)
    log("snapbench: first write: filling the bases (%s) ..." % human(span))
    h.cli("create", "base", "--size", human(size))
    p = h.serve("base")
    try:
        fill(p.uri("base"), span)
    finally:
        p.stop()
    h.cli("snapshot", "create", "base@s")
    qbase = os.path.join(qdir, "base.qcow2")
    run(["qemu-img", "create", "-q", "-f", "qcow2", qbase, str(size)])
    p = qemu_nbd(qbase, "qcow2", qdir)
    try:
        fill(p.uri("bench"), span)
    finally:
        p.stop()
    n = 0
    for rnd in range(cfg["rounds"]):
        for sysname in rotate(FW_SYSTEMS, rnd):
            n += 1
            log("snapbench: round %d/%d first write %s ..." % (rnd + 1, cfg["rounds"], sysname))
            if sysname == "hlfs-clone":
                name = "c%d" % n
                h.cli("clone", "base@s", name)
                p = h.serve(name)
                uri = p.uri(name)
            elif sysname == "hlfs-plain":
                name = "p%d" % n
                h.cli("create", name, "--size", human(size))
                p = h.serve(name)
                uri = p.uri(name)
            else:
                img = os.path.join(qdir, "fw%d.qcow2" % n)
                if sysname == "qcow2-overlay":
                    run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", qbase, "-F", "qcow2", img])
                else:
                    run(["qemu-img", "create", "-q", "-f", "qcow2", img, str(size)])
                p = qemu_nbd(img, "qcow2", qdir)
                uri = p.uri("bench")
            try:
                r = timed(p, uri, "firstwrite", span, "randwrite", cfg["runtime"])
            finally:
                p.stop()
            r.update(section="firstwrite", system=sysname, round=rnd, passes=r["io_bytes"] / span)
            results.append(r)
            log("snapbench:   %.0f IOPS p99 %.0f us, server %.1f us CPU/IO, %.2f passes" % (
                r["iops"], r["p99_us"], r["cpu_us_per_io"], r["passes"]))
            if sysname.startswith("qcow2"):
                os.unlink(img)
    shutil.rmtree(wd, ignore_errors=True)


# --- report ------------------------------------------------------------------

def report(results, cfg, sections):
    out = []
    w = out.append
    targets = []
    w("")
    w("hlfs snapshot/clone benchmark: fio %s, nbd ioengine over loopback TCP, %ds runs, %d round(s), medians"
      % (cfg["fio_version"], cfg["runtime"], cfg["rounds"]))

    if "depth" in sections:
        rs = [r for r in results if r["section"] == "depth"]
        w("")
        w("4K randread QD16 by clone depth  [depth]  (span %s filled in the base; a 4 KiB write of its own per level)"
          % human(cfg["span"]))
        w("%-6s %10s %7s %6s %7s  %10s %7s %6s %7s  %10s" % (
            "depth", "hlfs IOPS", "p99 us", "vs d0", "cpu/io", "qcow2 IOPS", "p99 us", "vs d0", "cpu/io", "hlfs/qcow2"))
        base = {}
        for d in cfg["depths"]:
            row = {}
            for s in ("hlfs", "qcow2"):
                x = [r for r in rs if r["system"] == s and r["depth"] == d]
                row[s] = (med([r["iops"] for r in x]), med([r["p99_us"] for r in x]),
                          med([r["cpu_us_per_io"] for r in x]))
                if d == min(cfg["depths"]):
                    base[s] = row[s][0]

            def cell(s):
                iops, p99, cpu = row[s]
                if iops is None:
                    return "%10s %7s %6s %7s" % ("-", "-", "-", "-")
                return "%10.0f %7.0f %5.2fx %7.1f" % (iops, p99, iops / base[s] if base.get(s) else 0, cpu)
            ratio = row["hlfs"][0] / row["qcow2"][0] if row["hlfs"][0] and row["qcow2"][0] else None
            w("%-6d %s  %s  %10s" % (d, cell("hlfs"), cell("qcow2"), "-" if ratio is None else "%.2fx" % ratio))
        w("  (cpu/io: the server's CPU microseconds per read, steadier than IOPS on a busy machine)")
        d0, dmax = min(cfg["depths"]), max(cfg["depths"])
        hq = [r["iops"] for r in rs if r["system"] == "hlfs" and r["depth"] == dmax]
        h0 = [r["iops"] for r in rs if r["system"] == "hlfs" and r["depth"] == d0]
        if hq and h0 and dmax != d0:
            ratio = med(hq) / med(h0)
            targets.append(("hlfs randread, clone depth %d / depth %d" % (dmax, d0), ">= %.1fx" % DEPTH_TARGET,
                            "%.2fx" % ratio, ratio >= DEPTH_TARGET))

    if "create" in sections:
        w("")
        w("snapshot create latency  [create]  (wall time of `hlfs snapshot create` through the admin socket"
          " of a running server, %d per size, a 4 KiB write before each)" % cfg["snap_reps"])
        proc = [r for r in results if r["section"] == "create" and r["what"] == "process"]
        if proc:
            w("  process start alone (`hlfs version`): median %.1f ms" % med(proc[0]["ms"]))
        w("%-10s %10s %8s %8s  %s" % ("written", "median ms", "min ms", "max ms", "path"))
        for r in (r for r in results if r["section"] == "create" and r["what"] == "cli"):
            w("%-10s %10.1f %8.1f %8.1f  %s" % (human(r["size"]), med(r["ms"]), min(r["ms"]), max(r["ms"]),
                                                "admin socket" if r["via_admin"] else "NOT the admin socket"))
            targets.append(("snapshot create, %s written (median)" % human(r["size"]), "< %.0f ms" % CREATE_TARGET_MS,
                            "%.1f ms" % med(r["ms"]), med(r["ms"]) < CREATE_TARGET_MS and r["via_admin"]))
        eng = [r for r in results if r["section"] == "create" and r["what"] == "engine"]
        for r in eng:
            w("  engine (go test -bench BenchmarkSnapshotCreate/%s): worst CreateSnapshot %s ms"
              " (%.2f ms per iteration with its 4 KiB write)" % (
                  r["case"], "-" if r["ms_worst"] is None else "%.2f" % r["ms_worst"], r["ms_per_op"]))

    if "firstwrite" in sections:
        rs = [r for r in results if r["section"] == "firstwrite"]
        w("")
        w("first write: 4K randwrite QD16 into a fresh volume  [firstwrite]  (span %s)" % human(cfg["fw_span"]))
        w("%-32s %10s %9s %10s %8s %8s" % ("target", "IOPS", "MB/s", "p99 us", "cpu/io", "passes"))
        m = {}
        for s in FW_SYSTEMS:
            x = [r for r in rs if r["system"] == s]
            if not x:
                continue
            m[s] = med([r["iops"] for r in x])
            w("%-32s %10.0f %9.1f %10.0f %8.1f %8.2f" % (
                FW_TITLES[s], m[s], med([r["mbps"] for r in x]), med([r["p99_us"] for r in x]),
                med([r["cpu_us_per_io"] for r in x]), med([r["passes"] for r in x])))
        if m.get("hlfs-clone") and m.get("qcow2-overlay"):
            w("  hlfs clone / qcow2 overlay: %.2fx" % (m["hlfs-clone"] / m["qcow2-overlay"]))
        if m.get("hlfs-plain") and m.get("qcow2-plain"):
            w("  hlfs plain / qcow2 plain:   %.2fx" % (m["hlfs-plain"] / m["qcow2-plain"]))
        if m.get("hlfs-clone") and m.get("hlfs-plain"):
            ratio = m["hlfs-clone"] / m["hlfs-plain"]
            targets.append(("first write, hlfs clone / hlfs plain volume", ">= %.1fx" % FIRSTWRITE_TARGET,
                            "%.2fx" % ratio, ratio >= FIRSTWRITE_TARGET))

    if targets:
        w("")
        w("targets:")
        for label, want, got, ok in targets:
            w("  %-46s %-9s %9s  %s" % (label, want, got, "PASS" if ok else "BELOW TARGET"))
    return "\n".join(out)


def parse_snap_size(s):
    s = s.strip()
    return int(float(s) * (1 << 30)) if re.fullmatch(r"[\d.]+", s) else parse_size(s)


def main():
    cfg = {
        "runtime": int(os.environ.get("BENCH_RUNTIME", "5")),
        "rounds": int(os.environ.get("BENCH_ROUNDS", "2")),
        "span": parse_size(os.environ.get("BENCH_SPAN", "256M")),
        "size": parse_size(os.environ.get("BENCH_SIZE", "1G")),
        "depths": [int(x) for x in os.environ.get("BENCH_DEPTHS", "0,8,32,64").split(",") if x.strip()],
        "snap_sizes": [parse_snap_size(x) for x in os.environ.get("BENCH_SNAP_SIZES", "1,10").split(",")
                       if x.strip()],
        "snap_reps": int(os.environ.get("BENCH_SNAP_REPS", "5")),
        "fw_span": parse_size(os.environ.get("BENCH_FW_SPAN", "1G")),
        "engine": os.environ.get("BENCH_SNAP_ENGINE", "") == "1",
    }
    sections = [s.strip() for s in os.environ.get("BENCH_SECTIONS", ",".join(SECTIONS)).split(",") if s.strip()]
    for s in sections:
        if s not in SECTIONS:
            sys.exit("snapbench: unknown section %r (want %s)" % (s, ",".join(SECTIONS)))
    if max(cfg["depths"]) + 1 > cfg["span"] >> 20:
        sys.exit("snapbench: BENCH_SPAN must cover the per-level writes at 1..%d MiB" % max(cfg["depths"]))
    missing = sorted(t for t in ("fio", "qemu-nbd", "qemu-img", "qemu-io") if not shutil.which(t))
    if missing:
        sys.exit("snapbench: missing %s: run scripts/install-test-deps.sh" % ", ".join(missing))
    if subprocess.run(["fio", "--enghelp=nbd"], capture_output=True).returncode != 0:
        sys.exit("snapbench: this fio has no nbd ioengine")
    cfg["fio_version"] = run(["fio", "--version"]).strip()
    hlfs_bin = os.path.abspath(os.environ.get("BENCH_HLFS_BIN", os.path.join(REPO, "bin", "hlfs")))
    if not os.access(hlfs_bin, os.X_OK):
        sys.exit("snapbench: %s missing (go build -o bin/hlfs ./cmd/hlfs)" % hlfs_bin)

    own_dir = "BENCH_DIR" not in os.environ
    cfg["workdir"] = tempfile.mkdtemp(prefix="hlfs-snapbench-", dir=os.environ.get("BENCH_DIR"))
    results, failures = [], []
    t0 = time.time()
    try:
        for sec in sections:
            try:
                {"depth": run_depth, "create": run_create, "firstwrite": run_firstwrite}[sec](cfg, hlfs_bin, results)
            except Exception as e:  # report, go on with the next section
                log("snapbench: %s FAILED: %s" % (sec, e))
                failures.append({"section": sec, "error": str(e)})
    finally:
        if own_dir:
            shutil.rmtree(cfg["workdir"], ignore_errors=True)
    print(report(results, cfg, [s for s in sections if s not in {f["section"] for f in failures}]))
    for f in failures:
        print("FAILED: %s: %s" % (f["section"], f["error"].strip().splitlines()[0]))
    print("(%.0f s in all; performance is reported, never a failing exit)" % (time.time() - t0))
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as f:
            json.dump({"config": cfg, "results": results, "failures": failures}, f, indent=1)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
