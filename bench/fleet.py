#!/usr/bin/env python3
"""hlfs with a fleet of volumes: listing, serve start-up, first I/O on a cold
volume and the memory of a serve that opened many volumes (issue 11).

For each store (a local file:// store; HDFS too when HLFS_HDFS_URI is set,
e.g. under scripts/with-hdfs.sh) the script fills a fresh store with
BENCH_FLEET_N empty 1 GiB volumes with bench/mkfleet (lfs.Create in one
process, 16 at once, describing them in the store index as `hlfs create`
does), then measures:

  create     seconds mkfleet took, and `hlfs create` run as separate
             processes (BENCH_FLEET_CLI_N of them, 8 at once, in a scratch
             store): the per-volume cost of filling a store with the CLI.
  ls         `hlfs ls` (from the store index), `hlfs ls --exact` (every
             volume read from the store, as ls did before the index) and,
             with BENCH_BASELINE_BIN, that binary's `hlfs ls` (the "before"
             column). Median of BENCH_ROUNDS runs; the JSON of ls and ls
             --exact must be identical (the store is quiet). Target < 1 s.
  serve      `hlfs serve --listen 127.0.0.1:PORT` of the whole store (it
             opens volumes on demand): seconds from start until a TCP
             connection gets the NBD greeting (NBDMAGIC IHAVEOPT; polled
             every 10 ms; a bare TCP connect says little, as serve listens
             before it accepts), or "timeout" after BENCH_SERVE_TIMEOUT;
             also until serve sent READY=1 to NOTIFY_SOCKET (as under
             systemd). Target < 1 s.
  first-io   with that serve, connect (handshake up to NBD_OPT_GO, which
             opens the volume) and read the first 4 KiB of a volume no
             client used yet (python3-libnbd), five volumes: median (the
             target), max, the connect and read parts, and the same five
             again once open (warm). The same for five volumes that hold
             BENCH_FLEET_DATA (4M) of random data, written before through
             a serve of just those volumes that then stopped, so the read
             fetches a checkpoint and a segment (compared with what was
             written). Target < 50 ms local, < 500 ms HDFS.
  rss        local store only: BENCH_FLEET_RSS_N volumes, serve with
             --idle-close BENCH_FLEET_IDLE_CLOSE and --metrics-listen,
             each volume opened once (connect + 4 KiB read,
             BENCH_FLEET_RSS_CLIENTS clients at once), then the metric
             hlfs_open_volumes polled until it reads 0 (and the log must
             say "closed idle volume" once per volume); VmRSS then and
             BENCH_FLEET_RSS_SETTLE s later, and the peak (VmHWM). Needs
             serve --idle-close; prints "skipped: serve has no
             --idle-close" otherwise. Target <= 150 MiB.

Each store's results carry the load averages before ls, serve and rss
(the figures mean little on a loaded machine without them).

Performance is a report, never a failing exit: the exit status is 1 only
when a run failed (a command error, ls output differing from --exact).

Configuration (environment):
  BENCH_FLEET_N         volumes in the store (default 10000)
  BENCH_FLEET_CLI_N     `hlfs create` processes timed (default 200)
  BENCH_FLEET_RSS_N     volumes for the rss run (default 1000)
  BENCH_ROUNDS          ls runs, median reported (default 3)
  BENCH_FLEET_IDLE_CLOSE  serve --idle-close for the rss run (default 20s:
                        longer than the opens take, so all are open at once)
  BENCH_FLEET_RSS_CLIENTS clients opening volumes at once (default 4)
  BENCH_FLEET_RSS_SETTLE  seconds between the two idle RSS reads (default 15)
  BENCH_SERVE_TIMEOUT   seconds to wait for serve (default 120)
  BENCH_FLEET_STORES    comma list of local,hdfs (default local, plus hdfs
                        when HLFS_HDFS_URI is set)
  HLFS_HDFS_URI         the HDFS cluster, e.g. hdfs://127.0.0.1:9000
  BENCH_HLFS_BIN        hlfs binary (default <repo>/bin/hlfs)
  BENCH_BASELINE_BIN    an older hlfs binary for the "before" ls column
  BENCH_DIR             local stores (default a new temp dir)
  BENCH_JSON            also write all raw results to this file
"""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

try:
    import nbd
except ImportError:
    nbd = None
    # python3-libnbd installs into Debian's interpreter; a python3 earlier
    # on PATH may not see it.
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def note(*args):
    print("fleet:", *args, file=sys.stderr, flush=True)


def load():
    """The 1, 5 and 15 minute load averages, as uptime prints them."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def env_int(name, default):
    return int(os.environ.get(name, default))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args, check=True, env=None):
    p = subprocess.run(args, capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p


def timed(*args, check=True):
    t = time.monotonic()
    p = run(*args, check=check)
    return time.monotonic() - t, p


class Fleet:
    """One store: its URI and how to make and remove it."""

    def __init__(self, kind, base, hlfs):
        self.kind, self.hlfs = kind, hlfs
        if kind == "local":
            self.path = os.path.join(base, f"fleet-{uuid.uuid4().hex[:8]}")
            self.uri = "file://" + self.path
        else:
            self.uri = os.environ["HLFS_HDFS_URI"].rstrip("/") + f"/hlfs-bench/fleet-{uuid.uuid4().hex[:8]}"

    def cmd(self, *args):
        return [self.hlfs, "--store", self.uri, *args]

    def fill(self, n, mkfleet):
        self.mkfleet = mkfleet
        secs, _ = timed(mkfleet, "-store", self.uri, "-n", str(n))
        return secs

    def remove(self):
        if self.kind == "local":
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            # The whole folder; hlfs rm of 10,000 volumes would take long.
            run(self.mkfleet, "-store", self.uri, "-rm", check=False)


def measure_cli_create(hlfs, kind, base, n):
    """Seconds per volume of `hlfs create` run as n processes, 8 at once."""
    f = Fleet(kind, base, hlfs)
    f.mkfleet = os.path.join(REPO, "bin", "mkfleet")
    run(*f.cmd("init"))
    t = time.monotonic()
    procs, i = [], 0
    while i < n or procs:
        while i < n and len(procs) < 8:
            procs.append(subprocess.Popen(f.cmd("create", f"c{i:05d}", "--size", "1G"),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            i += 1
        p = procs.pop(0)
        if p.wait() != 0:
            raise RuntimeError("hlfs create failed: " + p.stderr.read().decode())
    secs = time.monotonic() - t
    ls_secs, _ = timed(*f.cmd("ls"))
    index_objects = None
    if kind == "local":
        index_objects = len(os.listdir(os.path.join(f.path, ".index")))
    f.remove()
    return secs / n, ls_secs, index_objects


def measure_ls(f, baseline, rounds):
    out = {}
    idx, exact, base = [], [], []
    for _ in range(rounds):
        s, p = timed(*f.cmd("ls", "--json"))
        idx.append(s)
        s, q = timed(*f.cmd("ls", "--json", "--exact"))
        exact.append(s)
        if p.stdout != q.stdout:
            raise RuntimeError("hlfs ls --json differs from ls --json --exact on a quiet store")
        if baseline:
            s, _ = timed(baseline, "--store", f.uri, "ls", check=False)
            base.append(s)
    out["ls_index_s"] = statistics.median(idx)
    out["ls_exact_s"] = statistics.median(exact)
    if base:
        out["ls_baseline_s"] = statistics.median(base)
    out["volumes_listed"] = len(json.loads(p.stdout))
    return out


class Serve:
    """hlfs serve of a whole store, started with NOTIFY_SOCKET set so its
    systemd READY=1 can be timed too, and optionally --metrics-listen."""

    def __init__(self, f, extra=(), metrics=False):
        self.port = free_port()
        self.metrics_port = free_port() if metrics else None
        self.log = tempfile.NamedTemporaryFile(prefix="fleet-serve-", suffix=".log")
        self.tmp = tempfile.mkdtemp(prefix="fleet-notify-")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(os.path.join(self.tmp, "notify"))
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(self.tmp, "notify"))
        args = ["serve", "--listen", f"127.0.0.1:{self.port}", "--admin-socket", "none", *extra]
        if metrics:
            args += ["--metrics-listen", f"127.0.0.1:{self.metrics_port}"]
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(f.cmd(*args), stdout=self.log, stderr=self.log, env=env)

    def failed(self):
        if self.p.poll() is not None:
            self.log.seek(0)
            raise RuntimeError("serve exited: " + self.log.read().decode()[-2000:])

    def wait_ready(self, timeout):
        """Seconds from start until serve negotiates: a TCP connection gets
        the NBD greeting (NBDMAGIC IHAVEOPT). serve listens before it
        accepts, so a bare TCP connect (the kernel's backlog) says too
        little. None on timeout."""
        while time.monotonic() - self.t0 < timeout:
            self.failed()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
                    c.settimeout(max(1.0, timeout - (time.monotonic() - self.t0)))
                    got = b""
                    while len(got) < 18:
                        b = c.recv(18 - len(got))
                        if not b:
                            break
                        got += b
                    if got[:16] == b"NBDMAGICIHAVEOPT":
                        return time.monotonic() - self.t0
            except OSError:
                pass
            time.sleep(0.01)
        return None

    def wait_notify(self, timeout):
        """Seconds from start until serve sent READY=1 to NOTIFY_SOCKET."""
        self.notify.settimeout(0.1)
        while time.monotonic() - self.t0 < timeout:
            self.failed()
            try:
                msg = self.notify.recv(4096)
            except socket.timeout:
                continue
            if b"READY=1" in msg.split(b"\n"):
                return time.monotonic() - self.t0
        return None

    def metric(self, name):
        """The value of an unlabelled Prometheus metric, or None."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return None

    def log_count(self, text):
        self.log.seek(0)
        return self.log.read().decode(errors="replace").count(text)

    def status_mib(self, key):
        with open(f"/proc/{self.p.pid}/status") as st:
            for line in st:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
        return None

    def rss_mib(self):
        return self.status_mib("VmRSS")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=300)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.notify.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.log.close()


def first_io(port, name):
    """Seconds to connect to export name (the handshake up to NBD_OPT_GO,
    which opens the volume) and to read its first 4 KiB after that."""
    t = time.monotonic()
    h = nbd.NBD()
    h.set_export_name(name)
    h.connect_tcp("127.0.0.1", str(port))
    t1 = time.monotonic()
    buf = h.pread(4096, 0)
    t2 = time.monotonic()
    h.shutdown()
    if len(buf) != 4096:
        raise RuntimeError(f"short read from {name}")
    return t2 - t, t1 - t, t2 - t1


def write_some(f, names, timeout):
    """Writes BENCH_FLEET_DATA bytes of random data at offset 0 of each
    named volume through a serve of just those volumes, then stops it (a
    clean close: flushed, checkpointed). Returns each volume's first 4 KiB."""
    size = env_int("BENCH_FLEET_DATA", 4 << 20)
    s = Serve(f, names)
    first = {}
    try:
        if s.wait_ready(timeout) is None:
            raise RuntimeError("serve of the volumes to write did not get ready")
        for name in names:
            h = nbd.NBD()
            h.set_export_name(name)
            h.connect_tcp("127.0.0.1", str(s.port))
            data = os.urandom(size)
            for off in range(0, size, 1 << 20):
                h.pwrite(data[off:off + (1 << 20)], off)
            h.flush()
            h.shutdown()
            first[name] = data[:4096]
    finally:
        s.stop()
    if s.p.returncode != 0:
        raise RuntimeError(f"serve of the written volumes exited {s.p.returncode}")
    return first


def measure_serve(f, n, timeout):
    out = {}
    written = {}
    if nbd is not None:
        # Five other cold volumes that hold data: their first read must
        # fetch a checkpoint and a segment from the store.
        written = write_some(f, [f"v{(n * k) // 7 + 1:05d}" for k in range(1, 6)], timeout)
    s = Serve(f)
    try:
        ready = s.wait_ready(timeout)
        out["serve_ready_s"] = ready if ready is not None else f"timeout>{timeout}"
        notified = s.wait_notify(timeout)
        out["serve_ready_notify_s"] = notified if notified is not None else f"timeout>{timeout}"
        out["serve_rss_ready_mib"] = s.rss_mib()
        if ready is not None:
            if nbd is None:
                out["first_io_s"] = "skipped: no python3-libnbd"
            else:
                picks = [f"v{(n * k) // 7:05d}" for k in range(1, 6)]
                ios = [first_io(s.port, v) for v in picks]
                out["first_io_s"] = statistics.median(t for t, _, _ in ios)
                out["first_io_max_s"] = max(t for t, _, _ in ios)
                out["first_io_connect_s"] = statistics.median(c for _, c, _ in ios)
                out["first_io_read_s"] = statistics.median(r for _, _, r in ios)
                out["first_io_all_s"] = " ".join(f"{t:.3f}" for t, _, _ in ios)
                dio = []
                for v, want in written.items():
                    t = time.monotonic()
                    h = nbd.NBD()
                    h.set_export_name(v)
                    h.connect_tcp("127.0.0.1", str(s.port))
                    t1 = time.monotonic()
                    got = h.pread(4096, 0)
                    t2 = time.monotonic()
                    h.shutdown()
                    if got != want:
                        raise RuntimeError(f"{v}: the first 4 KiB read back differ from those written")
                    dio.append((t2 - t, t1 - t, t2 - t1))
                out["first_io_data_s"] = statistics.median(t for t, _, _ in dio)
                out["first_io_data_max_s"] = max(t for t, _, _ in dio)
                out["first_io_data_connect_s"] = statistics.median(c for _, c, _ in dio)
                out["first_io_data_read_s"] = statistics.median(r for _, _, r in dio)
                # The same volumes again, now open: what the first I/O adds.
                out["warm_io_s"] = statistics.median(first_io(s.port, v)[0] for v in picks)
            out["serve_rss_mib"] = s.rss_mib()
    finally:
        s.stop()
    return out


def measure_idle_rss(hlfs, base, n, mkfleet, idle):
    """RSS of serve after n volumes were each opened once (connect + 4 KiB
    read, BENCH_FLEET_RSS_CLIENTS at once) and then all idle-closed: the
    metric hlfs_open_volumes is polled until it reads 0, and the log must
    say "closed idle volume" n times."""
    help_text = run(hlfs, "serve", "--help", check=False).stdout
    if "--idle-close" not in help_text:
        return {"rss_idle_closed_mib": "skipped: serve has no --idle-close"}
    if nbd is None:
        return {"rss_idle_closed_mib": "skipped: no python3-libnbd"}
    f = Fleet("local", base, hlfs)
    f.fill(n, mkfleet)
    s = Serve(f, ["--idle-close", idle], metrics=True)
    out = {"rss_volumes": n, "rss_idle_close": idle}
    try:
        if s.wait_ready(BENCH_SERVE_TIMEOUT) is None:
            return {"rss_idle_closed_mib": "serve not ready"}
        out["rss_ready_mib"] = s.rss_mib()
        names = [f"v{i:05d}" for i in range(n)]
        clients = env_int("BENCH_FLEET_RSS_CLIENTS", 4)
        errors = []
        t0 = time.monotonic()

        def opener(k):
            try:
                for name in names[k::clients]:
                    first_io(s.port, name)
            except Exception as e:  # reported below
                errors.append(str(e))
        threads = [threading.Thread(target=opener, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError("opening volumes: " + errors[0])
        out["rss_open_all_s"] = time.monotonic() - t0
        out["rss_open_volumes_after_opens"] = s.metric("hlfs_open_volumes")
        out["rss_opened_mib"] = s.rss_mib()
        # Wait until serve says every volume is closed.
        deadline = time.monotonic() + go_seconds(idle) + 300
        while True:
            open_now = s.metric("hlfs_open_volumes")
            if open_now == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{open_now} volumes still open {go_seconds(idle) + 300:.0f} s after the opens")
            s.failed()
            time.sleep(0.5)
        out["rss_all_closed_after_s"] = time.monotonic() - t0
        out["rss_closed_in_log"] = s.log_count("closed idle volume")
        out["rss_peak_mib"] = s.status_mib("VmHWM")
        out["rss_idle_closed_mib"] = s.rss_mib()
        # Go gives freed memory back to the OS in the background: once more
        # a little later.
        time.sleep(env_int("BENCH_FLEET_RSS_SETTLE", 15))
        out["rss_idle_closed_later_mib"] = s.rss_mib()
        if out["rss_closed_in_log"] != n:
            raise RuntimeError(f"serve logged {out['rss_closed_in_log']} idle closes for {n} volumes")
        return out
    finally:
        s.stop()
        f.remove()


def go_seconds(d):
    """Seconds of a Go duration like 20s, 1m, 500ms (the forms used here)."""
    for suffix, mult in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if d.endswith(suffix) and d[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(d[: -len(suffix)]) * mult
    raise ValueError(f"duration {d!r}: use a number with ms, s, m or h")


BENCH_SERVE_TIMEOUT = env_int("BENCH_SERVE_TIMEOUT", 120)


def main():
    hlfs = os.environ.get("BENCH_HLFS_BIN", os.path.join(REPO, "bin", "hlfs"))
    baseline = os.environ.get("BENCH_BASELINE_BIN", "")
    n = env_int("BENCH_FLEET_N", 10000)
    cli_n = env_int("BENCH_FLEET_CLI_N", 200)
    rss_n = env_int("BENCH_FLEET_RSS_N", 1000)
    rounds = env_int("BENCH_ROUNDS", 3)
    stores = os.environ.get("BENCH_FLEET_STORES", "local,hdfs" if os.environ.get("HLFS_HDFS_URI") else "local").split(",")
    base = os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="hlfs-fleet-")
    mkfleet = os.path.join(REPO, "bin", "mkfleet")
    subprocess.run(["go", "build", "-o", mkfleet, "./bench/mkfleet"], cwd=REPO, check=True)
    results, failed = {}, False
    for kind in stores:
        r = results[kind] = {"volumes": n}
        try:
            per, ls_small, objs = measure_cli_create(hlfs, kind, base, cli_n)
            r["cli_create_s_per_volume"] = per
            note(kind, f"hlfs create: {per * 1000:.0f} ms a volume")
            r[f"ls_after_{cli_n}_cli_creates_s"] = ls_small
            if objs is not None:
                r[f"index_objects_after_{cli_n}_cli_creates"] = objs
            f = Fleet(kind, base, hlfs)
            r["mkfleet_s"] = f.fill(n, mkfleet)
            note(kind, f"{n} volumes made in {r['mkfleet_s']:.1f} s")
            try:
                r["load_before_ls"] = load()
                r.update(measure_ls(f, baseline, rounds))
                r["load_before_serve"] = load()
                note(kind, "ls", {k: v for k, v in r.items() if k.startswith("ls_")})
                r.update(measure_serve(f, n, BENCH_SERVE_TIMEOUT))
                note(kind, "serve", r.get("serve_ready_s"), "first I/O", r.get("first_io_s"))
            finally:
                f.remove()
        except Exception as e:  # report and go on with the next store
            r["error"] = str(e)
            failed = True
    if "local" in results:
        try:
            results["local"]["load_before_rss"] = load()
            results["local"].update(measure_idle_rss(hlfs, base, rss_n, mkfleet, os.environ.get("BENCH_FLEET_IDLE_CLOSE", "20s")))
        except Exception as e:
            results["local"]["rss_error"] = str(e)
            failed = True

    def fmt(v, unit=""):
        if isinstance(v, float):
            return f"{v:.3f}{unit}" if v < 10 else f"{v:.1f}{unit}"
        return str(v)

    print(f"\nhlfs fleet benchmark ({n} volumes)")
    for kind, r in results.items():
        print(f"\n[{kind}]")
        for k, v in r.items():
            print(f"  {k:36} {fmt(v)}")
    targets = [("ls_index_s", 1.0, "ls < 1 s"), ("serve_ready_s", 1.0, "serve ready < 1 s")]
    print()
    for kind, r in results.items():
        lim_io = 0.05 if kind == "local" else 0.5
        for key, lim, what in targets + [("first_io_s", lim_io, "first I/O"), ("first_io_data_s", lim_io, "first I/O, with data")]:
            v = r.get(key)
            if isinstance(v, (int, float)):
                print(f"  {kind:5} {what:22} {fmt(v)} s  {'PASS' if v < lim else 'BELOW TARGET'}")
        v = r.get("rss_idle_closed_mib")
        if isinstance(v, (int, float)):
            print(f"  {kind:5} {'RSS idle-closed':22} {fmt(v)} MiB  {'PASS' if v <= 150 else 'ABOVE TARGET'} (<= 150 MiB;"
                  f" {fmt(r.get('rss_idle_closed_later_mib'))} MiB later)")
    if os.environ.get("BENCH_JSON"):
        with open(os.environ["BENCH_JSON"], "w") as fh:
            json.dump(results, fh, indent=2)
    if not os.environ.get("BENCH_DIR"):
        shutil.rmtree(base, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
