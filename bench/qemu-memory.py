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
import argparse, base64, json, os, shutil, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "qemu"))
from boot_test import Guest, boot_report, free_port, http_get, ws_frames  # noqa: E402

MEASURE = r"""
# cat, not awk FILES: a process gone between listing and reading must not end the sum
pss() { for p in "$@"; do cat /proc/$p/smaps_rollup 2>/dev/null; done | awk '/^Pss:/ {s+=$2} END {print s+0}'; }
echo "meminfo $(awk '/^(MemTotal|MemAvailable|MemFree|Shmem|Slab|Buffers|Cached):/ {printf "%s=%s ", $1, $2}' /proc/meminfo)"
p=$(systemctl show -p MainPID --value pinholed); echo "pinholed_pss_kb $(pss $p) rss_kb $(awk '/^VmRSS/ {print $2}' /proc/$p/status)"
n=$(for d in /proc/[0-9]*; do [ "$(cat $d/comm 2>/dev/null)" = nginx ] && echo ${d#/proc/}; done); echo "nginx_pss_kb $(pss $n) procs $(echo $n | wc -w)"
a=$(for d in /proc/[0-9]*; do echo ${d#/proc/}; done); echo "all_pss_kb $(pss $a)"
echo "tmpfs_kb $(df -k --output=used -t tmpfs | tail -n +2 | awk '{s+=$1} END {print s}')"
"""


def viewer(port, stop, counts, i):
    while not stop.is_set():
        try:
            # 300 frames (10 s) per connection: reconnect gaps stay short
            counts[i] += len(ws_frames(port, "/ws/h264", 300, timeout=20))
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
        # One line over the console: a multi-line command would end in a
        # line starting with `;` (the marker's), a syntax error.
        b64 = base64.b64encode(MEASURE.encode()).decode()
        g.sh(f"echo {b64} | base64 -d > /run/measure.sh")
        measure = "bash /run/measure.sh"
        time.sleep(20)  # let the first HLS segments and the journal settle
        print("idle (no viewers):\n  " + g.sh(measure, 300)[1].replace("\n", "\n  "), flush=True)
        stop, counts = threading.Event(), [0] * a.viewers
        ts = [threading.Thread(target=viewer, args=(port, stop, counts, i), daemon=True) for i in range(a.viewers)]
        for t in ts:
            t.start()
        # the stream as the viewers get it, halfway: size, frame rate from
        # the hub's frame counter over 10 s, viewer count per output
        time.sleep(max(0, a.secs // 2 - 10))
        try:
            s0 = json.loads(http_get(port, "/api/status")[2])
            time.sleep(10)
            s1 = json.loads(http_get(port, "/api/status")[2])
            dt = s1["uptime_s"] - s0["uptime_s"]
            sm = s1.get("stream") or {}
            fps = (f"stream {sm.get('width')}x{sm.get('height')}, {(s1['frames'] - s0['frames']) / dt:.1f} fps"
                   f" over {dt:.0f} s, viewers {s1.get('viewers')}")
        except Exception as e:
            fps = f"status: {type(e).__name__}: {e}"
        time.sleep(max(0, a.secs - a.secs // 2))
        _, out = g.sh(measure, 300)
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
