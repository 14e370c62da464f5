#!/usr/bin/python3
"""Crash-test load generator for an NBD export (python3-libnbd).

Writes random BLOCK-byte blocks at random block-aligned offsets inside
[0, SPAN) with up to QD writes in flight, never two in flight to the same
offset, and flushes every FLUSH_EVERY writes. With --max-run N each write
covers a run of 1 to N consecutive blocks (random), so later writes cover
parts of earlier ones; the log still has one record per block. Every FUA_EVERY-th write (if
set) carries the FUA flag. It runs until --writes are done or until the
server goes away (the expected end in a kill -9 test: exit status 3).

The log (appended, line-buffered, one record per line):

  B <pid>             a writer process starts
  W <offset> <sha256> a write is about to be issued (not yet acknowledged);
                      a write of a run of blocks logs one W per block
  U <offset> <sha256> a FUA write was acknowledged: it is durable (one U
                      per block of its run)
  F <n>               a FLUSH was acknowledged after every earlier write
                      of this process completed: all of them are durable

So every flushed batch's (offset, sha256) pairs reach the log as durable only
after the flush reply. A checker (e2e/crash_test.go) replays the log: per
offset the durable value is the last W before the last F (or the last U), and
after a crash the block may hold that value or any value written after it.

Usage: nbd_writer.py --uri nbd://127.0.0.1:PORT/VOL --log FILE
                     [--span BYTES] [--block BYTES] [--qd N]
                     [--flush-every N] [--fua-every N] [--writes N] [--seed N]
                     [--max-run N]
"""

import argparse
import hashlib
import os
import random
import sys

import nbd


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--uri", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--span", type=int, default=64 << 20)
    ap.add_argument("--block", type=int, default=4096)
    ap.add_argument("--qd", type=int, default=8)
    ap.add_argument("--flush-every", type=int, default=16)
    ap.add_argument("--fua-every", type=int, default=0)
    ap.add_argument("--writes", type=int, default=0,
                    help="stop after N writes (0: until the server dies)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--max-run", type=int, default=1,
                    help="each write covers 1 to N consecutive blocks (default 1)")
    a = ap.parse_args()

    rng = random.Random(a.seed)
    nblocks = a.span // a.block
    h = nbd.NBD()
    h.connect_uri(a.uri)
    log = open(a.log, "a", buffering=1)
    log.write("B %d\n" % os.getpid())

    inflight = {}  # cookie -> (offsets, shas, fua, buffer kept alive)
    busy = set()  # block offsets with a write in flight
    stats = {"writes": 0, "flushes": 0, "acked": 0}

    def wait_one():
        while True:
            for c in list(inflight):
                if h.aio_command_completed(c):  # raises nbd.Error on failure
                    offs, shas, fua, _ = inflight.pop(c)
                    busy.difference_update(offs)
                    stats["acked"] += 1
                    if fua:
                        for off, sha in zip(offs, shas):
                            log.write("U %d %s\n" % (off, sha))
                    return
            h.poll(-1)

    try:
        n = 0
        while a.writes == 0 or n < a.writes:
            first = rng.randrange(nblocks)
            run = 1 if a.max_run <= 1 else min(rng.randint(1, a.max_run), nblocks - first)
            off = first * a.block
            offs = [off + i * a.block for i in range(run)]
            while any(o in busy for o in offs) or len(inflight) >= a.qd:
                wait_one()
            data = rng.randbytes(run * a.block)
            shas = [hashlib.sha256(data[i * a.block:(i + 1) * a.block]).hexdigest()
                    for i in range(run)]
            n += 1
            fua = a.fua_every > 0 and n % a.fua_every == 0
            for o, sha in zip(offs, shas):
                log.write("W %d %s\n" % (o, sha))
            buf = nbd.Buffer.from_bytearray(bytearray(data))
            flags = nbd.CMD_FLAG_FUA if fua else 0
            c = h.aio_pwrite(buf, off, flags=flags)
            inflight[c] = (offs, shas, fua, buf)
            busy.update(offs)
            stats["writes"] = n
            if n % a.flush_every == 0:
                while inflight:
                    wait_one()
                h.flush()
                stats["flushes"] += 1
                log.write("F %d\n" % n)
        while inflight:
            wait_one()
        h.flush()
        stats["flushes"] += 1
        log.write("F %d\n" % n)
        h.shutdown()
    except nbd.Error as e:
        print("nbd_writer: server gone after %(writes)d writes, %(acked)d acked, "
              "%(flushes)d flushes: " % stats + str(e), file=sys.stderr)
        sys.exit(3)
    print("nbd_writer: done: %(writes)d writes, %(flushes)d flushes" % stats,
          file=sys.stderr)


if __name__ == "__main__":
    main()
