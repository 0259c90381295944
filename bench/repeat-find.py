#!/usr/bin/env python3
"""repeat-find.py: find+stat over the bench's full data set on a fresh
mount, then again 2 s, 10 s and 60 s after that first run ended, for several
mounts of the same three layers, interleaved. Each round mounts every method
afresh; their first finds start 25 s apart and every run is scheduled by
time, so the later runs of one method fall between those of the others and
no two runs overlap.

    bench/repeat-find.py ROUNDS NAME=CMD...
        CMD: a unionfsd command line (flags allowed), "fuse-overlayfs" or "overlay"

Prints "round method age wall_s daemon_cpu_s late_s drops" per run (late: how
much after its nominal age a run started, when another run was still going;
drops: how many times someone on the machine wrote 2 or 3 to
/proc/sys/vm/drop_caches since the method's first run ended, which throws
away the kernel's cached names of every mount: such a run measures a cold
cache whatever the timeouts) (CPU: utime+stime of
the daemon from /proc/PID/stat). The page cache is dropped once per round,
before the mounts: dropping it between methods would drop the dentries that
the later runs are about, so only the first method's first run is cold; the order rotates every round.
"""
import os, shlex, subprocess, sys, time, heapq, shutil

rounds = int(sys.argv[1])
methods = [a.split("=", 1) for a in sys.argv[2:]]
data = os.environ.get("DATA", "/var/tmp/unionfsd-bench/full/layers")
lowers = ":".join(f"{data}/{l}" for l in ("l3", "l2", "l1"))
scratch = os.environ.get("SCRATCH", f"/var/tmp/repeat-find.{os.getpid()}")
tick = os.sysconf("SC_CLK_TCK")
AGES = (2, 10, 60)
SPACING = 25


def cpu(pid):
    if not pid:
        return 0.0
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick


def mount(name, cmd, d):
    for sub in ("up", "work", "mnt"):
        os.makedirs(f"{d}/{sub}", exist_ok=True)
    opts = f"lowerdir={lowers},upperdir={d}/up,workdir={d}/work"
    if cmd == "overlay":
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, f"{d}/mnt"], check=True)
        proc = None
    else:
        argv = shlex.split(cmd) + ["-f", "-o", opts, f"{d}/mnt"]
        proc = subprocess.Popen(argv, stderr=open(f"{d}/stderr", "w"))
    for _ in range(200):
        if os.path.ismount(f"{d}/mnt"):
            return proc
        time.sleep(0.05)
    raise SystemExit(f"{name}: mount did not appear")


def drops():
    for line in open("/proc/vmstat"):
        if line.startswith("drop_slab "):
            return int(line.split()[1])
    return 0


def find(d, pid):
    c0, t0 = cpu(pid), time.monotonic()
    subprocess.run(["find", f"{d}/mnt", "-printf", "%s %m\n"], stdout=subprocess.DEVNULL, check=True)
    t1, c1 = time.monotonic(), cpu(pid)
    return t1 - t0, c1 - c0


os.makedirs(scratch, exist_ok=True)
try:
    for r in range(1, rounds + 1):
        subprocess.run(["sync"])
        open("/proc/sys/vm/drop_caches", "w").write("3\n")
        # The order rotates every round: only the first method's first run
        # finds the page cache cold.
        order = methods[(r - 1) % len(methods):] + methods[:(r - 1) % len(methods)]
        mounted = {}
        for name, cmd in order:
            d = f"{scratch}/{name}.{r}"
            mounted[name] = (d, mount(name, cmd, d))
        start = time.monotonic()
        queue = [(start + SPACING * i, i, name, "first") for i, (name, _) in enumerate(order)]
        ends = {}
        heapq.heapify(queue)
        while queue:
            due, i, name, age = heapq.heappop(queue)
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            late = time.monotonic() - due
            d, proc = mounted[name]
            dropped = drops() - ends[name] if age != "first" else 0
            wall, c = find(d, proc.pid if proc else 0)
            print(f"{r} {name} {age} {wall:.3f} {c:.2f} {late:.1f} {dropped}", flush=True)
            if age == "first":
                end = time.monotonic()
                ends[name] = drops()
                for a in AGES:
                    heapq.heappush(queue, (end + a, i, name, f"{a}s"))
        for name, (d, proc) in mounted.items():
            if proc:  # all of the daemon's CPU in the round, finds and idle (events) alike
                print(f"{r} {name} total-cpu - {cpu(proc.pid):.2f} - -", flush=True)
            subprocess.run(["umount", f"{d}/mnt"], check=True)
            if proc:
                proc.wait(timeout=30)
            err = open(f"{d}/stderr").read() if os.path.exists(f"{d}/stderr") else ""
            if err:
                sys.stderr.write("".join(f"{name}: {l}\n" for l in err.splitlines()))
            shutil.rmtree(d)
finally:
    for name, cmd in methods:
        for r in range(1, rounds + 1):
            m = f"{scratch}/{name}.{r}/mnt"
            if os.path.ismount(m):
                subprocess.run(["umount", "-l", m])
    shutil.rmtree(scratch, ignore_errors=True)
