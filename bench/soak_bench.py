#!/usr/bin/env python3
"""Soak benchmark: the daemon under a random workload, killed with SIGKILL and restarted
at random moments, then every file checked against what the workload last wrote.

  sudo bench/soak_bench.py [--minutes=10] [--seed=1] [--binary=PATH]
  (or: sudo bazel run -c opt //bench:soak_bench -- [options])

Makes a sparse loopback btrfs (8 GiB) in a temporary directory, a subvolume `data` with
20 directories, and runs `btrdupd --daemon --test-time-scale=60` on it (one real second
is one daemon minute; initial_wait_minutes=1: a file is deduped seconds after it
settles). For --minutes, one workload thread writes: creates from a pool of 48 shared
contents (16-516 KiB), overwrites, appends, renames of files and directories,
deletes, and read-only snapshots of `data` (at most 60). Every 10-60 s (random) the
daemon is killed with SIGKILL and started again. Its RSS is sampled every second.

At the end the workload stops, the daemon is given 30 s to catch up and asked for its
status, then stopped with SIGTERM; every file in `data` and in every snapshot is
compared (SHA-256) with what the workload last wrote there, and every snapshot must
still be read-only. Prints: operations by kind, restarts, files checked, mismatches
(must be 0), snapshots not read-only (must be 0), the SIGTERM exit code, peak RSS per
minute and overall, and the bytes the daemon reports deduped.
"""

import argparse
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

POOL = 48
MAX_SNAPSHOTS = 60
DIRS = 20
MAX_FILES = 2500  # beyond this many live files, creates give way to deletes


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def content(i):
    rnd = random.Random(1000 + i)
    size = rnd.choice([16, 32, 64, 128, 256, 512]) * 1024 + rnd.randrange(0, 4096)
    return rnd.randbytes(size)


class Workload:
    def __init__(self, root, seed):
        self.root = root
        self.data = os.path.join(root, "data")
        self.rnd = random.Random(seed)
        self.pool = [content(i) for i in range(POOL)]
        self.files = {}  # relative path -> sha256 of what was written last
        self.dirs = [f"d{i}" for i in range(DIRS)]
        self.snapshots = {}  # snapshot name -> {relative path: sha256}
        self.ops = {}
        self.stop = threading.Event()
        self.counter = 0

    def count(self, op):
        self.ops[op] = self.ops.get(op, 0) + 1

    def write(self, rel, data, append=False):
        path = os.path.join(self.data, rel)
        self.files[rel] = None  # being written (see step)
        with open(path, "ab" if append else "wb") as f:
            f.write(data)
        if append:
            with open(path, "rb") as f:
                self.files[rel] = hashlib.sha256(f.read()).hexdigest()
        else:
            self.files[rel] = hashlib.sha256(data).hexdigest()

    def step(self):
        try:
            self.step_once()
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            # The volume is full (snapshots keep deleted data): what was being written is
            # incomplete, so it is deleted and forgotten; deletes free space again.
            self.count("ENOSPC")
            for rel in list(self.files):
                path = os.path.join(self.data, rel)
                if self.files[rel] is None:
                    os.unlink(path)
                    del self.files[rel]

    def step_once(self):
        r = self.rnd.random()
        names = list(self.files)
        if len(names) > MAX_FILES and r < 0.40:
            r = 0.9  # a delete instead
        if r < 0.40 or len(names) < 20:
            self.counter += 1
            rel = f"{self.rnd.choice(self.dirs)}/f{self.counter}"
            self.write(rel, self.pool[self.rnd.randrange(POOL)])
            self.count("create")
        elif r < 0.55:
            self.write(self.rnd.choice(names), self.pool[self.rnd.randrange(POOL)])
            self.count("overwrite")
        elif r < 0.62:
            self.write(self.rnd.choice(names), self.rnd.randbytes(self.rnd.randrange(1, 9000)),
                       append=True)
            self.count("append")
        elif r < 0.77:
            old = self.rnd.choice(names)
            self.counter += 1
            new = f"{self.rnd.choice(self.dirs)}/r{self.counter}"
            os.rename(os.path.join(self.data, old), os.path.join(self.data, new))
            self.files[new] = self.files.pop(old)
            self.count("rename file")
        elif r < 0.80:
            i = self.rnd.randrange(len(self.dirs))
            old = self.dirs[i]
            self.counter += 1
            new = f"d{self.counter}"
            os.rename(os.path.join(self.data, old), os.path.join(self.data, new))
            self.dirs[i] = new
            self.files = {(new + p[len(old):] if p.startswith(old + "/") else p): h
                          for p, h in self.files.items()}
            self.count("rename directory")
        elif r < 0.9988:
            rel = self.rnd.choice(names)
            os.unlink(os.path.join(self.data, rel))
            del self.files[rel]
            self.count("delete")
        elif len(self.snapshots) < MAX_SNAPSHOTS:
            name = f"snap{len(self.snapshots)}"
            sh("btrfs", "subvolume", "snapshot", "-r", self.data,
               os.path.join(self.root, name))
            self.snapshots[name] = dict(self.files)
            self.count("snapshot")

    def run(self):
        while not self.stop.is_set():
            self.step()
            time.sleep(self.rnd.uniform(0, 0.02))


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--binary", default=None, help="btrdupd binary (default: from runfiles)")
    args = ap.parse_args()
    binary = args.binary
    if binary is None:
        here = os.path.dirname(os.path.abspath(__file__))
        for candidate in (os.path.join(here, "..", "daemon", "btrdupd"),
                          os.path.join(os.environ.get("RUNFILES_DIR", ""), "btrdupd/daemon/btrdupd")):
            if os.access(candidate, os.X_OK):
                binary = candidate
                break
    if binary is None:
        sys.exit("soak_bench: give --binary=PATH (the btrdupd to run)")
    if os.geteuid() != 0:
        sys.exit("soak_bench: run as root (mount, ioctls)")

    tmp = tempfile.mkdtemp(prefix="btrdupd-soak-", dir="/tmp")
    image, mnt, sock = f"{tmp}/image", f"{tmp}/mnt", f"{tmp}/sock"
    os.mkdir(mnt)
    os.mkdir(sock)
    with open(image, "wb") as f:
        f.truncate(8 << 30)
    sh("mkfs.btrfs", "-q", "-f", image)
    sh("mount", "-o", "loop", image, mnt)
    daemon = None
    rnd = random.Random(args.seed + 7)
    try:
        sh("btrfs", "subvolume", "create", f"{mnt}/data")
        for i in range(DIRS):
            os.mkdir(f"{mnt}/data/d{i}")
        with open(f"{mnt}/.btrdupd.conf", "w") as f:
            f.write("[DEFAULT]\ninitial_wait_minutes = 1\nmin_file_size = 8192\n")
        argv = [binary, "--daemon", f"--socket-dir={sock}", "--test-time-scale=60",
                "--scan-interval=60s", mnt]
        log = open(f"{tmp}/daemon.log", "ab")

        def start():
            return subprocess.Popen(argv, stdout=log, stderr=log)

        work = Workload(mnt, args.seed)
        worker = threading.Thread(target=work.run)
        daemon = start()
        worker.start()
        t0 = time.time()
        end = t0 + args.minutes * 60
        next_kill = t0 + rnd.uniform(10, 60)
        restarts = 0
        peak_by_minute = {}
        while time.time() < end:
            time.sleep(1)
            minute = int((time.time() - t0) // 60)
            peak_by_minute[minute] = max(peak_by_minute.get(minute, 0), rss_kib(daemon.pid))
            if daemon.poll() is not None:
                print(f"daemon exited by itself with {daemon.returncode}; restarting")
                daemon = start()
                restarts += 1
            if time.time() >= next_kill:
                daemon.kill()
                daemon.wait()
                daemon = start()
                restarts += 1
                next_kill = time.time() + rnd.uniform(10, 60)
        work.stop.set()
        worker.join()
        sh("sync")
        settle_end = time.time() + 30
        while time.time() < settle_end:
            time.sleep(1)
            minute = int((time.time() - t0) // 60)
            peak_by_minute[minute] = max(peak_by_minute.get(minute, 0), rss_kib(daemon.pid))
        status = sh(binary, "--daemon-status", "--json", f"--socket-dir={sock}", mnt,
                    check=False)
        bytes_deduped = None
        try:
            reply = json.loads(status.stdout)
            bytes_deduped = (f'shared {reply["bytes_shared"]}, freed {reply["bytes_freed"]}'
                             if "bytes_shared" in reply else None)
        except (ValueError, AttributeError):
            pass
        if bytes_deduped is None:
            m = [l for l in status.stdout.splitlines() if "dedup" in l.lower()]
            bytes_deduped = "; ".join(m) or status.stdout.strip()[:200]
        daemon.send_signal(signal.SIGTERM)
        try:
            term_exit = daemon.wait(timeout=120)
        except subprocess.TimeoutExpired:
            daemon.kill()
            term_exit = "did not exit in 120 s"
        daemon = None

        checked = mismatches = 0
        problems = []
        trees = [("data", work.files)] + sorted(work.snapshots.items())
        for tree, expected in trees:
            base = f"{mnt}/{tree}"
            on_disk = set()
            for dirpath, _, filenames in os.walk(base):
                for name in filenames:
                    on_disk.add(os.path.relpath(os.path.join(dirpath, name), base))
            for rel in sorted(set(expected) | on_disk):
                checked += 1
                path = f"{base}/{rel}"
                if rel not in expected or rel not in on_disk or sha256_of(path) != expected[rel]:
                    mismatches += 1
                    if len(problems) < 10:
                        problems.append(f"{tree}/{rel}")
        not_ro = [s for s in work.snapshots
                  if sh("btrfs", "property", "get", "-ts", f"{mnt}/{s}", "ro").stdout.strip()
                  != "ro=true"]

        print(f"soak: {args.minutes:g} min, seed {args.seed}, binary {binary}")
        print(f"operations: {sum(work.ops.values())} "
              f"({', '.join(f'{k} {v}' for k, v in sorted(work.ops.items()))})")
        print(f"restarts after SIGKILL: {restarts}")
        print(f"files checked: {checked} (data and {len(work.snapshots)} snapshots)")
        print(f"mismatches: {mismatches}" + (f" (e.g. {', '.join(problems)})" if problems else ""))
        print(f"snapshots not read-only: {len(not_ro)}")
        print(f"SIGTERM exit code: {term_exit}")
        print("peak RSS MiB by minute: " +
              " ".join(f"{m}:{kib / 1024:.1f}" for m, kib in sorted(peak_by_minute.items())))
        print(f"peak RSS MiB overall: {max(peak_by_minute.values()) / 1024:.1f}")
        print(f"bytes deduped (daemon status): {bytes_deduped}")
        return 0 if mismatches == 0 and not not_ro else 1
    finally:
        if daemon is not None:
            daemon.kill()
            daemon.wait()
        if os.path.exists(f"{tmp}/daemon.log"):
            shutil.copy(f"{tmp}/daemon.log", "/tmp/btrdupd-soak-daemon.log")
        sh("umount", mnt, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
