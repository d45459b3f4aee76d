#!/usr/bin/env python3
"""Memory of the booted image on a small board: pinholed + nginx + the rest
of the system, with N viewers, in QEMU with -m MIB (the Zero 2 W has 512 MB,
of which gpu_mem=128 leaves Linux ~384 MB).

    bench/qemu-memory.py IMAGE [--mem 512] [--viewers 10] [--secs 60]

The image streams its default 1280x720 at 30 fps (test pattern, software
H.264); the viewers are WebSocket /ws/h264 clients through nginx, reading
as fast as frames come. Reports /proc/meminfo (MemTotal, MemAvailable),
the Pss of pinholed and of all nginx processes (smaps_rollup), tmpfs use
(HLS segments, journal), and the kernel's view of the rest. Not in CI (one
more boot, ~5 min); results go into image/README.md "Memory".
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "qemu"))
from boot_test import Guest, boot_report, free_port, http_get, ws_frames  # noqa: E402

MEASURE = r"""
pss() { awk '/^Pss:/ {s+=$2} END {print s+0}' $(for p in "$@"; do echo /proc/$p/smaps_rollup; done) 2>/dev/null; }
echo "meminfo $(awk '/^(MemTotal|MemAvailable|MemFree|Shmem|Slab|Buffers|Cached):/ {printf "%s=%s ", $1, $2}' /proc/meminfo)"
p=$(systemctl show -p MainPID --value pinholed); echo "pinholed_pss_kb $(pss $p) rss_kb $(awk '/^VmRSS/ {print $2}' /proc/$p/status)"
n=$(for d in /proc/[0-9]*; do [ "$(cat $d/comm 2>/dev/null)" = nginx ] && echo ${d#/proc/}; done); echo "nginx_pss_kb $(pss $n) procs $(echo $n | wc -w)"
a=$(for d in /proc/[0-9]*; do echo ${d#/proc/}; done); echo "all_pss_kb $(pss $a)"
echo "tmpfs_kb $(df -k --output=used -t tmpfs | tail -n +2 | awk '{s+=$1} END {print s}')"
"""


def viewer(port, stop, counts, i):
    while not stop.is_set():
        try:
            counts[i] += len(ws_frames(port, "/ws/h264", 30, timeout=20))
        except Exception:
            time.sleep(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--mem", type=int, default=512)
    ap.add_argument("--viewers", type=int, default=10)
    ap.add_argument("--secs", type=int, default=60)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pinhole-qemu-mem-")
    disk = os.path.join(tmp, "disk.img")
    subprocess.run(["cp", "--sparse=always", a.image, disk], check=True)
    port = free_port()
    g = Guest(disk, port, os.path.join(tmp, "console.log"), mem_mib=a.mem)
    try:
        r = boot_report(g)
        print(f"booted with -m {a.mem}: {r}", flush=True)
        time.sleep(20)  # let the first HLS segments and the journal settle
        print("idle (no viewers):\n  " + g.sh(MEASURE)[1].replace("\n", "\n  "), flush=True)
        stop, counts = threading.Event(), [0] * a.viewers
        ts = [threading.Thread(target=viewer, args=(port, stop, counts, i), daemon=True) for i in range(a.viewers)]
        for t in ts:
            t.start()
        time.sleep(a.secs)
        _, out = g.sh(MEASURE)
        try:
            st = json.loads(http_get(port, "/api/status")[2])
            fps = f"source {st.get('measured', {}).get('fps')} fps, viewers {st.get('viewers')}"
        except Exception as e:
            fps = f"status: {e}"
        stop.set()
        print(f"{a.viewers} viewers after {a.secs}s ({sum(counts)} frames received in total; {fps}):\n  "
              + out.replace("\n", "\n  "), flush=True)
        _, oom = g.sh("journalctl -k --no-pager | grep -ci 'out of memory' || true")
        print(f"OOM kills: {oom.strip()}")
    finally:
        g.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
