#!/usr/bin/env python3
"""Data set and helpers for bench/dedupe_bench.sh (see there).

  dedupe_bench.py generate DIR      write the deterministic data set into DIR
  dedupe_bench.py expected DIR MIN  prints "IDEAL FILES CANDIDATES": IDEAL = bytes a perfect
                                    whole-file deduper reclaims in DIR: for every group of
                                    identical regular files of at least MIN bytes (distinct
                                    inodes), (copies - 1) * size; FILES = those copies;
                                    CANDIDATES = bytes of the files >= MIN that share their
                                    size with another inode
  dedupe_bench.py table FILE...     print the results table from key=value result files
                                    (several files of one tool: median [min-max])
"""

import hashlib
import os
import random
import shutil
import sys

MIB = 1024 * 1024
SEED = 20261126

# Read-only trees of this machine copied twice into the data set ("real files").
REAL_TREES = ["/usr/share/doc", "/usr/lib/python3.11", "/usr/share/man"]


def write_random(path, size, rng, chunk=4 * MIB):
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(chunk, left)
            f.write(rng.randbytes(n))
            left -= n


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def copy_tree(src, dst):
    # Plain copies (no reflinks, symlinks kept as symlinks): duplicates with their own
    # extents, as a user's second copy of a tree would be.
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        target_dir = os.path.join(dst, rel)
        os.makedirs(target_dir, exist_ok=True)
        for name in files:
            s = os.path.join(root, name)
            d = os.path.join(target_dir, name)
            if os.path.islink(s):
                try:
                    os.symlink(os.readlink(s), d)
                except OSError:
                    pass
            elif os.path.isfile(s):
                try:
                    with open(s, "rb") as fi, open(d, "wb") as fo:
                        shutil.copyfileobj(fi, fo, 1 << 20)
                except OSError:
                    pass
        dirs[:] = [x for x in dirs if not os.path.islink(os.path.join(root, x))]


def generate(top):
    rng = random.Random(SEED)
    # 1. Real trees, copied twice.
    for copy in ("real-a", "real-b"):
        for tree in REAL_TREES:
            if os.path.isdir(tree):
                copy_tree(tree, os.path.join(top, copy, tree.strip("/").replace("/", "_")))
    # 2. Large duplicated files: 128 MiB twice, 64 MiB three times.
    os.makedirs(os.path.join(top, "large"), exist_ok=True)
    for name, size, copies in (("big128", 128 * MIB, 2), ("big64", 64 * MIB, 3)):
        first = os.path.join(top, "large", f"{name}.0")
        write_random(first, size, random.Random(f"{SEED}-{name}"))
        for i in range(1, copies):
            with open(first, "rb") as fi, open(os.path.join(top, "large", f"{name}.{i}"), "wb") as fo:
                shutil.copyfileobj(fi, fo, 4 * MIB)
    # 3. A group of 400 identical 64 KiB files in 10 directories.
    blob = random.Random(f"{SEED}-many").randbytes(64 * 1024)
    for i in range(400):
        d = os.path.join(top, "many", f"d{i % 10}")
        os.makedirs(d, exist_ok=True)
        write_bytes(os.path.join(d, f"same-{i:03d}.bin"), blob)
    # 4. Same-size decoys: 16 x 4 MiB differing in their first block, 16 x 4 MiB
    #    identical but for their last 8 bytes.
    os.makedirs(os.path.join(top, "decoys", "early"), exist_ok=True)
    os.makedirs(os.path.join(top, "decoys", "late"), exist_ok=True)
    body = random.Random(f"{SEED}-decoy").randbytes(4 * MIB)
    for i in range(16):
        head = random.Random(f"{SEED}-early-{i}").randbytes(4096)
        write_bytes(os.path.join(top, "decoys", "early", f"e{i:02d}"), head + body[4096:])
        tail = random.Random(f"{SEED}-late-{i}").randbytes(8)
        write_bytes(os.path.join(top, "decoys", "late", f"l{i:02d}"), body[:-8] + tail)
    # 5. Small files below min_file_size (8192): 2000 files, pairs of identical ones.
    for i in range(1000):
        size = rng.randint(100, 8000)
        data = random.Random(f"{SEED}-small-{i}").randbytes(size)
        for copy in range(2):
            d = os.path.join(top, "small", f"d{(2 * i + copy) % 20}")
            os.makedirs(d, exist_ok=True)
            write_bytes(os.path.join(d, f"s{i:04d}-{copy}"), data)


def expected(top, min_size):
    by_size = {}
    seen = set()
    for root, dirs, files in os.walk(top):
        dirs[:] = [x for x in dirs if x != ".btrdupd"]
        for name in files:
            p = os.path.join(root, name)
            st = os.lstat(p)
            if not os.path.stat.S_ISREG(st.st_mode) or st.st_size < min_size:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            by_size.setdefault(st.st_size, []).append(p)
    total = 0
    files = 0
    candidates = 0
    for size, paths in by_size.items():
        if len(paths) < 2:
            continue
        candidates += size * len(paths)
        groups = {}
        for p in paths:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            groups.setdefault(h.digest(), 0)
            groups[h.digest()] += 1
        for n in groups.values():
            if n >= 2:
                total += (n - 1) * size
                files += n - 1
    return total, files, candidates


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2.0


def spread(values, fmt, suffix=""):
    """median, and [min-max] when the runs differ in the printed precision."""
    text = (fmt % median(values)) + suffix
    lo, hi = fmt % min(values), fmt % max(values)
    if lo != hi:
        text += " [%s-%s]" % (lo, hi)
    return text


def table(paths):
    by_tool = {}
    order = []
    for path in paths:
        row = {}
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    row[k] = v
        if row["tool"] not in by_tool:
            by_tool[row["tool"]] = []
            order.append(row["tool"])
        by_tool[row["tool"]].append(row)
    first = by_tool[order[0]][0] if order else {}
    ideal = int(first.get("expected", "0"))
    candidates = int(first.get("candidates", "0"))
    header = ("tool", "runs", "wall s", "cpu s", "peak RSS MiB", "reclaimed MiB", "of ideal",
              "read MiB", "read/cand", "exit")
    lines = []
    for tool in order:
        rows = by_tool[tool]
        reclaimed = [int(r["used_before"]) - int(r["used_after"]) for r in rows]
        read = [int(r["read_bytes"]) for r in rows]
        lines.append((
            tool, str(len(rows)),
            spread([float(r["wall"]) for r in rows], "%.1f"),
            spread([float(r["user"]) + float(r["sys"]) for r in rows], "%.1f"),
            spread([int(r["maxrss_kb"]) / 1024.0 for r in rows], "%.1f"),
            spread([x / MIB for x in reclaimed], "%.1f"),
            spread([100.0 * x / ideal if ideal else 0.0 for x in reclaimed], "%.1f", "%"),
            spread([x / MIB for x in read], "%.1f"),
            spread([x / candidates if candidates else 0.0 for x in read], "%.2f"),
            ",".join(sorted(set(r["exit"] for r in rows)))))
    widths = [max(len(header[i]), *(len(l[i]) for l in lines)) for i in range(len(header))]
    fmt = "  ".join("%-" + str(w) + "s" if i == 0 else "%" + str(w) + "s"
                    for i, w in enumerate(widths))
    print(fmt % header)
    print("  ".join("-" * w for w in widths))
    for l in lines:
        print(fmt % l)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "generate":
        generate(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "expected":
        total, files, candidates = expected(sys.argv[2], int(sys.argv[3]))
        print(f"{total} {files} {candidates}")
    elif len(sys.argv) >= 3 and sys.argv[1] == "table":
        table(sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
