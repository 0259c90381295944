#!/usr/bin/env python3
"""untar-ab.py: untar the bench's 20k-file tarball through fresh unionfsd
mounts of the full data set's three layers, each method once per round, in
an order that rotates every round.

    bench/untar-ab.py ROUNDS NAME=CMD...     (CMD: a unionfsd command line)

Prints "round method wall_s daemon_cpu_s". Every run untars into a new
upper dir; the uppers are removed only after the last round, so no run
lands on inodes freed by another (ext4 reuses recently freed inodes, which
makes a later untar faster).
"""
import os, shlex, subprocess, sys, time, shutil

rounds = int(sys.argv[1])
methods = [a.split("=", 1) for a in sys.argv[2:]]
base = os.environ.get("DATA", "/var/tmp/unionfsd-bench/full")
lowers = ":".join(f"{base}/layers/{l}" for l in ("l3", "l2", "l1"))
tarball = f"{base}/untar.tar"
scratch = os.environ.get("SCRATCH", f"/var/tmp/untar-ab.{os.getpid()}")
tick = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick


os.makedirs(scratch, exist_ok=True)
try:
    for r in range(1, rounds + 1):
        order = methods[(r - 1) % len(methods):] + methods[:(r - 1) % len(methods)]
        for name, cmd in order:
            d = f"{scratch}/{name}.{r}"
            for sub in ("up", "work", "mnt"):
                os.makedirs(f"{d}/{sub}")
            opts = f"lowerdir={lowers},upperdir={d}/up,workdir={d}/work"
            proc = subprocess.Popen(shlex.split(cmd) + ["-f", "-o", opts, f"{d}/mnt"])
            for _ in range(200):
                if os.path.ismount(f"{d}/mnt"):
                    break
                time.sleep(0.05)
            os.mkdir(f"{d}/mnt/untar")
            subprocess.run(["sync"])
            c0, t0 = cpu(proc.pid), time.monotonic()
            subprocess.run(["tar", "-xf", tarball, "-C", f"{d}/mnt/untar"], check=True)
            t1, c1 = time.monotonic(), cpu(proc.pid)
            print(f"{r} {name} {t1 - t0:.3f} {c1 - c0:.2f}", flush=True)
            subprocess.run(["umount", f"{d}/mnt"], check=True)
            proc.wait(timeout=30)
finally:
    for m in os.listdir(scratch):
        p = f"{scratch}/{m}/mnt"
        if os.path.ismount(p):
            subprocess.run(["umount", "-l", p])
    shutil.rmtree(scratch, ignore_errors=True)
