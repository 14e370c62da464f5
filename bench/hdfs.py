#!/usr/bin/env python3
"""hlfs on HDFS: NBD throughput against raw HDFS and the local store, flush
rate and HDFS files per GiB with and without the local journal.

Needs the HDFS mini-cluster (eval "$(scripts/hdfs-up.sh)": HLFS_HDFS_URI,
HADOOP_CONF_DIR) and fio with its nbd ioengine. Every hlfs run gets a fresh
volume in a fresh folder HLFS_HDFS_URI/hlfs-bench/<run> (removed with
`hlfs rm` after the run) or a fresh file:// store, a fresh `hlfs serve`, and
fio over loopback TCP:

  seqwrite   1M sequential write QD4 of BENCH_HDFS_SEQ bytes with a final
             FLUSH (fio --end_fsync=1), so every byte is durable in HDFS;
             against bench/hdfsraw (built here with go build): the same
             bytes written straight to HDFS with the same client library
             (github.com/colinmarc/hdfs/v2) in 1 MiB writes, closing a file
             every 32 MiB like hlfs's segments. Wall time of each, closes
             included. Target hlfs-hdfs / raw-hdfs >= 0.8.
  randwrite  4K random write QD16, no flushes, after a 1M sequential fill of
             the span; hlfs on HDFS against hlfs on a local file:// store.
             Target hlfs-hdfs / hlfs-local >= 0.8 (IOPS).
  fsync1     4K random write QD1 with a FLUSH after every write (fio
             --fsync=1): flushes per second on HDFS without a journal (each
             FLUSH closes a segment), with --journal DIR (each FLUSH is a
             local fdatasync) and on the local store, for information.
  fsync32    4K random write QD16 with a FLUSH every 32 writes, the same
             three ways: IOPS and flushes per second of a flush-heavy guest.

For fsync1 and fsync32 the report also gives the HDFS files the timed run
created per GiB it wrote: segments (`hlfs info --json`, after a clean stop,
when the journal has shipped everything) minus those before the run.
Performance is a report, never a failing exit: the exit status is 1 only
when a run failed (fio error, server crash) or the setup is missing.

Configuration (environment):
  HLFS_HDFS_URI         the cluster (required), e.g. hdfs://127.0.0.1:9000
  BENCH_HDFS_JOBS       comma list (default seqwrite,randwrite,fsync1,fsync32)
  BENCH_RUNTIME         seconds per timed run (default 5)
  BENCH_ROUNDS          rounds; medians are reported (default 2)
  BENCH_SPAN            bytes the random jobs touch (default 256M)
  BENCH_HDFS_SEQ        bytes of seqwrite (default 512M)
  BENCH_SIZE            volume size (default 2G; at least BENCH_HDFS_SEQ)
  BENCH_HDFS_REPLICATION  hlfs create --replication and hdfsraw -replication
                        (default 0: the cluster's dfs.replication)
  BENCH_HLFS_BIN        hlfs binary (default <repo>/bin/hlfs, built if absent)
  BENCH_DIR             local stores and journals (default a new temp dir)
  BENCH_JSON            also write all raw results to this file
"""

import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import REPO, free_port, human, log, nbd_greets, parse_size, run  # noqa: E402

# job -> fio parameters; systems measured per job
JOBS = {
    "seqwrite": dict(rw="write", bs="1M", iodepth=4, systems=["hlfs-hdfs", "raw-hdfs"]),
    "randwrite": dict(rw="randwrite", bs="4k", iodepth=16, fill=True, systems=["hlfs-hdfs", "hlfs-local"]),
    "fsync1": dict(rw="randwrite", bs="4k", iodepth=1, fsync=1,
                   systems=["hlfs-hdfs", "hlfs-hdfs-journal", "hlfs-local"]),
    "fsync32": dict(rw="randwrite", bs="4k", iodepth=16, fsync=32,
                    systems=["hlfs-hdfs", "hlfs-hdfs-journal", "hlfs-local"]),
}
TITLES = {
    "seqwrite": "1M seq write QD4, durable at the end",
    "randwrite": "4K randwrite QD16, no flushes",
    "fsync1": "4K randwrite QD1, FLUSH after every write",
    "fsync32": "4K randwrite QD16, FLUSH every 32 writes",
}
# (job, system, baseline, key, minimum ratio)
TARGETS = [
    ("seqwrite", "hlfs-hdfs", "raw-hdfs", "mbps", 0.8),
    ("randwrite", "hlfs-hdfs", "hlfs-local", "iops", 0.8),
]
VOL = "benchvol"


class HLFS:
    """One `hlfs serve` of a fresh volume on HDFS or a local store."""

    def __init__(self, system, cfg):
        self.system, self.cfg = system, cfg
        self.bin = cfg["hlfs_bin"]
        self.dir = tempfile.mkdtemp(prefix=system + "-", dir=cfg["workdir"])
        if system.startswith("hlfs-hdfs"):
            self.store = "%s/hlfs-bench/%s-%d-%06d" % (cfg["hdfs_uri"], system, os.getpid(),
                                                       random.randrange(10**6))
        else:
            self.store = "file://" + os.path.join(self.dir, "store")
        self.journal = os.path.join(self.dir, "journal") if system.endswith("-journal") else None
        self.port = free_port()
        self.uri = "nbd://127.0.0.1:%d/%s" % (self.port, VOL)
        self.log_path = os.path.join(self.dir, "server.log")
        self.proc = None
        self.created = False

    def hlfs(self, *args):
        return run([self.bin, "--store", self.store] + list(args))

    def start(self):
        if not self.created:
            extra = []
            if self.system.startswith("hlfs-hdfs") and self.cfg["replication"]:
                extra = ["--replication", str(self.cfg["replication"])]
            self.hlfs("create", VOL, "--size", human(self.cfg["size"]), *extra)
            self.created = True
        cmd = [self.bin, "--store", self.store, "serve", "--listen", "127.0.0.1:%d" % self.port,
               "--admin-socket", "none"]
        if self.journal:
            cmd += ["--journal", self.journal]
        self.logf = open(self.log_path, "a")
        self.proc = subprocess.Popen(cmd + [VOL], stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("hlfs serve exited during start-up:\n" + self.log_tail())
            if nbd_greets(self.port):
                return
            if time.time() > deadline:
                raise RuntimeError("hlfs serve not listening after 60 s:\n" + self.log_tail())
            time.sleep(0.02)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("hlfs serve ignored SIGTERM for 120 s:\n" + self.log_tail())
        self.logf.close()
        if code != 0:
            raise RuntimeError("hlfs serve exited %d after SIGTERM:\n%s" % (code, self.log_tail()))

    def segments(self):
        return json.loads(self.hlfs("info", VOL, "--json"))["segments"]

    def log_tail(self, n=20):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.created and self.store.startswith("hdfs://"):
            try:
                self.hlfs("rm", VOL)
            except Exception as e:  # a leftover in the test cluster is no failure
                log("bench-hdfs: removing %s from %s: %s" % (VOL, self.store, str(e).splitlines()[0]))
        shutil.rmtree(self.dir, ignore_errors=True)


def fio(uri, name, size, rw, bs, iodepth, fsync=0, runtime=None, end_fsync=False):
    cmd = ["fio", "--name=" + name, "--ioengine=nbd", "--uri=" + uri, "--rw=" + rw, "--bs=" + bs,
           "--iodepth=%d" % iodepth, "--size=%d" % size, "--output-format=json",
           "--randrepeat=0", "--norandommap=0"]
    if fsync:
        cmd.append("--fsync=%d" % fsync)
    if end_fsync:
        cmd.append("--end_fsync=1")
    if runtime:
        cmd += ["--runtime=%d" % runtime, "--time_based"]
    t0 = time.time()
    out = run(cmd)
    wall = time.time() - t0
    doc = json.loads(out[out.index("{"):])
    job = doc["jobs"][0]
    if job.get("error"):
        raise RuntimeError("fio %s: error %s" % (name, job["error"]))
    job["wall_s"] = wall
    return job


def measure_raw(cfg):
    folder = "%s/hlfs-bench/raw-%d-%06d" % (cfg["hdfs_uri"], os.getpid(), random.randrange(10**6))
    out = run([cfg["hdfsraw_bin"], "-uri", folder, "-mib", str(cfg["seq"] >> 20), "-file-mib", "32",
               "-replication", str(cfg["replication"])])
    r = json.loads(out.strip().splitlines()[-1])
    return {"mbps": r["mbps"], "seconds": r["seconds"], "files": r["files"],
            "replication": r["replication"]}


def measure(system, job, cfg):
    if system == "raw-hdfs":
        return measure_raw(cfg)
    spec = JOBS[job]
    srv = HLFS(system, cfg)
    try:
        srv.start()
        if spec.get("fill"):
            fio(srv.uri, "fill", cfg["span"], "write", "1M", 4)
        seg0 = srv.segments()
        if job == "seqwrite":
            # fio's job runtime covers the final FLUSH (--end_fsync).
            j = fio(srv.uri, job, cfg["seq"], "write", "1M", 4, end_fsync=True)
        else:
            j = fio(srv.uri, job, cfg["span"], spec["rw"], spec["bs"], spec["iodepth"],
                    spec.get("fsync", 0), cfg["runtime"])
        secs = j["job_runtime"] / 1000
        w = j["write"]
        res = {"iops": w["iops"], "mbps": w["io_bytes"] / 1e6 / secs, "bytes": w["io_bytes"],
               "p99_us": w.get("clat_ns", {}).get("percentile", {}).get("99.000000", 0) / 1000,
               "seconds": secs, "fio_sync_ios": j.get("sync", {}).get("total_ios", 0)}
        if spec.get("fsync"):
            # One FLUSH per --fsync writes (fio's own sync count is not that
            # for an async engine at QD > 1).
            res["flushes"] = w["total_ios"] // spec["fsync"]
            res["flush_per_s"] = res["flushes"] / secs
        srv.stop()
        res["files"] = srv.segments() - seg0
        res["files_per_gib"] = res["files"] / (res["bytes"] / (1 << 30)) if res["bytes"] else 0
        res["files_per_s"] = res["files"] / secs
        return res
    except Exception as e:
        raise RuntimeError("%s\nserver log:\n%s" % (e, srv.log_tail())) from e
    finally:
        srv.cleanup()


def med(rs, key):
    vals = [r[key] for r in rs if key in r]
    return statistics.median(vals) if vals else None


def report(results, jobs, cfg):
    out = []
    w = out.append

    def rows(job, system):
        return [r for r in results if r["job"] == job and r["system"] == system]

    w("")
    w("hlfs on HDFS: fio %s (nbd ioengine, loopback TCP), %s; span %s, %ds runs, %d round(s), medians"
      % (cfg["fio_version"], cfg["hdfs_uri"], human(cfg["span"]), cfg["runtime"], cfg["rounds"]))
    w("")
    for job in jobs:
        w("%s  [%s]" % (TITLES[job], job))
        if job == "seqwrite":
            w("%-18s %9s %9s %7s" % ("system", "MB/s", "seconds", "files"))
        else:
            w("%-18s %9s %9s %9s %9s %9s %11s %8s" % (
                "system", "IOPS", "MB/s", "p99 us", "flush/s", "files", "files/GiB", "files/s"))
        for s in JOBS[job]["systems"]:
            rs = rows(job, s)
            if not rs:
                continue
            if job == "seqwrite":
                w("%-18s %9.1f %9.2f %7.0f" % (s, med(rs, "mbps"), med(rs, "seconds"), med(rs, "files")))
            else:
                fps = med(rs, "flush_per_s")
                w("%-18s %9.0f %9.1f %9.0f %9s %9.0f %11.0f %8.1f" % (
                    s, med(rs, "iops"), med(rs, "mbps"), med(rs, "p99_us"), "-" if fps is None else "%.1f" % fps,
                    med(rs, "files"), med(rs, "files_per_gib"), med(rs, "files_per_s")))
        w("")
    w("targets (same run):")
    for job, sys_, base, key, want in TARGETS:
        if job not in jobs:
            continue
        label = "  %-38s %s / %s >= %.1fx:" % (TITLES[job], sys_, base, want)
        a, b = med(rows(job, sys_), key), med(rows(job, base), key)
        if a is None or not b:
            w("%s n/a (no result)" % label)
            continue
        ratio = a / b
        w("%s %5.2fx  %s" % (label, ratio, "PASS" if ratio >= want else "BELOW TARGET"))
    info = []
    hr, raw = med(rows("randwrite", "hlfs-hdfs"), "mbps"), med(rows("seqwrite", "raw-hdfs"), "mbps")
    if hr and raw:
        info.append("  randwrite: hlfs-hdfs MB/s / raw-hdfs seqwrite MB/s %5.2fx (how much of what HDFS"
                    " itself takes 4K random writes reach)" % (hr / raw))
    for job in ("fsync1", "fsync32"):
        if job not in jobs:
            continue
        h, j, l = (med(rows(job, s), "flush_per_s") for s in ("hlfs-hdfs", "hlfs-hdfs-journal", "hlfs-local"))
        fh, fj = (med(rows(job, s), "files_per_gib") for s in ("hlfs-hdfs", "hlfs-hdfs-journal"))
        if h and j:
            line = "  %s: flushes/s journal / no journal %5.1fx" % (job, j / h)
            if l:
                line += ", journal / local store %4.2fx" % (j / l)
            if fh and fj:
                line += "; HDFS files/GiB no journal / journal %5.0fx" % (fh / fj)
            info.append(line)
    if info:
        w("for information:")
        out.extend(info)
    return "\n".join(out)


def main():
    cfg = {
        "runtime": int(os.environ.get("BENCH_RUNTIME", "5")),
        "rounds": int(os.environ.get("BENCH_ROUNDS", "2")),
        "span": parse_size(os.environ.get("BENCH_SPAN", "256M")),
        "seq": parse_size(os.environ.get("BENCH_HDFS_SEQ", "512M")),
        "size": parse_size(os.environ.get("BENCH_SIZE", "2G")),
        "replication": int(os.environ.get("BENCH_HDFS_REPLICATION", "0")),
        "hdfs_uri": os.environ.get("HLFS_HDFS_URI", "").rstrip("/"),
    }
    jobs = [x.strip() for x in os.environ.get("BENCH_HDFS_JOBS", ",".join(JOBS)).split(",") if x.strip()]
    for j in jobs:
        if j not in JOBS:
            sys.exit("bench-hdfs: unknown job %r (want %s)" % (j, ",".join(JOBS)))
    if not cfg["hdfs_uri"]:
        sys.exit("bench-hdfs: HLFS_HDFS_URI is not set: start the mini-cluster with "
                 "eval \"$(scripts/hdfs-up.sh)\" (stop it with scripts/hdfs-down.sh)")
    if cfg["size"] < max(cfg["seq"], cfg["span"]):
        cfg["size"] = max(cfg["seq"], cfg["span"])
    for tool in ("fio", "go"):
        if not shutil.which(tool):
            sys.exit("bench-hdfs: %s not found (scripts/install-test-deps.sh installs fio)" % tool)
    if subprocess.run(["fio", "--enghelp=nbd"], capture_output=True).returncode != 0:
        sys.exit("bench-hdfs: this fio has no nbd ioengine")
    cfg["fio_version"] = run(["fio", "--version"]).strip()

    own_dir = "BENCH_DIR" not in os.environ
    cfg["workdir"] = tempfile.mkdtemp(prefix="hlfs-bench-hdfs-", dir=os.environ.get("BENCH_DIR"))
    results, failures = [], []
    t0 = time.time()
    try:
        hlfs_bin = os.environ.get("BENCH_HLFS_BIN", os.path.join(REPO, "bin", "hlfs"))
        if not os.path.isabs(hlfs_bin) and not os.path.exists(hlfs_bin):
            hlfs_bin = os.path.join(REPO, hlfs_bin)
        if not os.access(hlfs_bin, os.X_OK):
            log("bench-hdfs: %s missing: building ./cmd/hlfs" % hlfs_bin)
            hlfs_bin = os.path.join(cfg["workdir"], "hlfs")
            run(["go", "build", "-o", hlfs_bin, "./cmd/hlfs"], cwd=REPO)
        cfg["hlfs_bin"] = os.path.abspath(hlfs_bin)
        cfg["hdfsraw_bin"] = os.path.join(cfg["workdir"], "hdfsraw")
        run(["go", "build", "-o", cfg["hdfsraw_bin"], "./bench/hdfsraw"], cwd=REPO)

        for rnd in range(cfg["rounds"]):
            for job in jobs:
                systems = JOBS[job]["systems"]
                k = rnd % len(systems)
                for s in systems[k:] + systems[:k]:
                    log("bench-hdfs: round %d/%d %-10s %-18s ..." % (rnd + 1, cfg["rounds"], job, s))
                    try:
                        r = measure(s, job, cfg)
                    except Exception as e:
                        log("bench-hdfs:   FAILED: %s" % e)
                        failures.append({"system": s, "job": job, "round": rnd, "error": str(e)})
                        continue
                    r.update(system=s, job=job, round=rnd)
                    results.append(r)
                    log("bench-hdfs:   %s" % ", ".join(
                        "%s %.1f" % (k2, r[k2]) for k2 in ("iops", "mbps", "flush_per_s", "files", "files_per_gib")
                        if k2 in r))
    except RuntimeError as e:
        log("bench-hdfs: setup failed: %s" % e)
        failures.append({"system": "-", "job": "setup", "round": 0, "error": str(e)})
    finally:
        if own_dir:
            shutil.rmtree(cfg["workdir"], ignore_errors=True)
    print(report(results, jobs, cfg))
    for f in failures:
        print("FAILED: %s %s round %d: %s" % (f["system"], f["job"], f["round"] + 1,
                                              f["error"].strip().splitlines()[0]))
    print("(%.0f s in all; performance is reported, never a failing exit)" % (time.time() - t0))
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as f:
            json.dump({"config": cfg, "results": results, "failures": failures}, f, indent=1)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
