#!/usr/bin/env python3
"""System test: boot the qemu-arm64 image (U-Boot from the disk alone) and
check it like a user and an operator would.

    tests/qemu/boot_test.py IMAGE [--no-ab] [--keep-log DIR]

Asserts: the system reaches `running` with no failed units; / is a read-only
squashfs; pinholed is active (Type=notify: READY=1 was sent); nginx serves
the UI at /; a WebSocket viewer on /ws/h264 through nginx receives H.264;
HLS files land in the tmpfs (skipped until /api/status reports hls); /data
grew to fill a larger disk; SIGSTOP to pinholed gets it restarted by the
systemd watchdog; A/B: a one-shot trial of slot B boots B once, then A again.
Prints timings (boot to first frame, ...) and 'N passed, N failed, N skipped'.
Needs only python3 and qemu-system-aarch64 + u-boot-qemu; no root.
"""
import argparse, base64, json, os, re, shutil, socket, subprocess, sys, tempfile, threading, time
import urllib.request

UBOOT = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"
WATCHDOG_SEC = 10          # pinholed.service WatchdogSec=
RESTART_BUDGET = WATCHDOG_SEC + 5 + 2 + 30   # + TimeoutAbortSec + RestartSec + margin (TCG is slow)

results = {"passed": 0, "failed": 0, "skipped": 0}
timings = {}


def check(ok, what, detail=""):
    results["passed" if ok else "failed"] += 1
    print(f"{'ok' if ok else 'FAIL'}: {what}{(' — ' + detail) if detail else ''}", flush=True)
    return ok


def skip(what, why):
    results["skipped"] += 1
    print(f"skip: {what} — {why}", flush=True)


class Guest:
    """qemu-system-aarch64 with the serial console on stdio."""

    def __init__(self, image, port, log_path):
        self.port = port
        self.buf = ""
        self.lock = threading.Lock()
        self.log = open(log_path, "w", buffering=1, errors="replace")
        cmd = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", "1024",
               "-nographic", "-bios", UBOOT,
               "-drive", f"if=none,file={image},format=raw,id=hd", "-device", "virtio-blk-device,drive=hd",
               "-netdev", f"user,id=n,hostfwd=tcp:127.0.0.1:{port}-:80", "-device", "virtio-net-device,netdev=n",
               "-device", "i6300esb", "-device", "virtio-rng-device"]
        self.log.write("$ " + " ".join(cmd) + "\n")
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.seq = 0

    def _read(self):
        while True:
            b = self.p.stdout.read1(4096)
            if not b:
                return
            s = b.decode(errors="replace").replace("\r", "")
            self.log.write(s)
            with self.lock:
                self.buf += s

    def elapsed(self):
        return time.monotonic() - self.t0

    def wait_for(self, pattern, timeout, start=0):
        """Wait for a regex in the console output after offset start; returns the match."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                m = rx.search(self.buf, start)
            if m:
                return m
            if self.p.poll() is not None:
                raise RuntimeError(f"qemu exited ({self.p.returncode}) waiting for {pattern!r}")
            time.sleep(0.2)
        raise TimeoutError(f"no {pattern!r} on the console within {timeout}s")

    def mark(self):
        with self.lock:
            return len(self.buf)

    def send(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()

    def sh(self, cmd, timeout=60):
        """Run a command in the autologin root shell; return (status, output)."""
        self.seq += 1
        n = self.seq
        start = self.mark()
        # the markers are computed by the shell, so the echoed command line never matches
        self.send(f"echo @@B$((7000+{n}))@@; {cmd}; echo @@E$((7000+{n}))@@ $?")
        m = self.wait_for(rf"@@E{7000 + n}@@ (\d+)", timeout, start)
        b = self.wait_for(rf"@@B{7000 + n}@@\n", 5, start)
        with self.lock:
            out = self.buf[b.end():m.start()]
        return int(m.group(1)), out.strip()

    def login(self, timeout=300, start=0):
        self.wait_for(r"root@[\w-]+:[^\n]*# ", timeout, start)
        self.send("export SYSTEMD_PAGER= SYSTEMD_COLORS=0 TERM=dumb PS1='# '; stty -echo; dmesg -n 1")
        time.sleep(1)

    def monitor(self, command):
        """A QEMU monitor command through the -nographic mux (Ctrl-A c)."""
        self.p.stdin.write(b"\x01c")
        self.p.stdin.flush()
        time.sleep(0.5)
        self.p.stdin.write((command + "\n").encode())
        self.p.stdin.flush()
        time.sleep(0.5)
        self.p.stdin.write(b"\x01c")
        self.p.stdin.flush()

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def http_get(port, path, timeout=10):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, dict(r.headers), r.read()


def ws_frames(port, path, count, timeout):
    """Minimal RFC 6455 client: return the first `count` binary messages."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n")[0].decode(errors="replace")
        if " 101 " not in status + " ":
            raise ConnectionError(f"handshake: {status}")

        def need(n):
            nonlocal buf
            while len(buf) < n:
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
            out, buf = buf[:n], buf[n:]
            return out

        frames, partial = [], b""
        while len(frames) < count:
            b0, b1 = need(2)
            ln = b1 & 0x7F
            if ln == 126:
                ln = int.from_bytes(need(2), "big")
            elif ln == 127:
                ln = int.from_bytes(need(8), "big")
            mask = need(4) if b1 & 0x80 else None
            payload = need(ln)
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            op = b0 & 0x0F
            if op == 8:
                raise ConnectionError("server closed the WebSocket")
            if op == 9:  # ping -> pong (client frames are masked)
                m = os.urandom(4)
                s.sendall(bytes([0x8A, 0x80 | len(payload)]) + m + bytes(c ^ m[i % 4] for i, c in enumerate(payload)))
                continue
            if op in (0, 2):
                partial += payload
                if b0 & 0x80:
                    frames.append(partial)
                    partial = b""
        return frames
    finally:
        s.close()


def nal_types(data):
    return [data[m.end()] & 0x1F for m in re.finditer(b"\x00\x00\x01", data) if m.end() < len(data)]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def boot_report(g, start=0, timeout=600):
    """Log in on the console, wait for the boot to finish, return its summary."""
    g.login(timeout, start)
    st, state = g.sh("timeout 420 systemctl is-system-running --wait", 450)
    state = state.strip().splitlines()[-1] if state.strip() else "?"
    _, failed = g.sh("systemctl list-units --failed --plain --no-legend | awk '{print $1}' | paste -sd, -")
    _, root = g.sh("findmnt -no FSTYPE,OPTIONS / | tr ' ' ':'")
    _, slot = g.sh("sed -n 's/.*pinhole[.]slot=\\([ab]\\).*/\\1/p' /proc/cmdline")
    r = {"state": state, "failed": failed.strip() or "none", "root": root.strip(), "slot": slot.strip() or "?"}
    if r["state"] != "running":
        _, diag = g.sh("systemctl list-jobs --no-legend | head -20; systemctl --failed --no-legend;"
                       " for u in $(systemctl list-units --failed --plain --no-legend | awk '{print $1}');"
                       " do journalctl -b -u $u --no-pager | tail -n 15; done")
        print("   diagnostics:\n   " + diag.replace("\n", "\n   "), flush=True)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--no-ab", action="store_true", help="skip the A/B trial-boot check (two more boots)")
    ap.add_argument("--log-dir", default=None)
    ap.add_argument("--grow-mib", type=int, default=256, help="enlarge the disk copy to test /data growth")
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="pinhole-qemu-")
    logdir = a.log_dir or tmp
    os.makedirs(logdir, exist_ok=True)
    log_path = os.path.join(logdir, "console.log")
    disk = os.path.join(tmp, "disk.img")
    subprocess.run(["cp", "--sparse=always", a.image, disk], check=True)
    with open(disk, "r+b") as f:
        f.truncate(os.path.getsize(disk) + a.grow_mib * 1024 * 1024)
    print(f"image {a.image} ({os.path.getsize(a.image) >> 20} MiB), console log {log_path}", flush=True)
    port = free_port()
    g = Guest(disk, port, log_path)
    try:
        run_checks(g, port, a)
    except Exception as e:  # a hang or crash is a failed check, with the console tail to look at
        check(False, "test ran to the end", f"{type(e).__name__}: {e}")
        with g.lock:
            tail = g.buf[-3000:]
        print("---- console tail ----\n" + tail + "\n----------------------", flush=True)
    finally:
        g.stop()
        if not a.log_dir:
            shutil.copy(log_path, os.path.join(os.environ.get("TMPDIR", "/tmp"), "pinhole-qemu-console.log"))
        shutil.rmtree(tmp, ignore_errors=True)
    print("timings: " + ", ".join(f"{k}={v:.1f}s" for k, v in timings.items()))
    print(f"{results['passed']} passed, {results['failed']} failed, {results['skipped']} skipped")
    return 1 if results["failed"] else 0


def run_checks(g, port, a):
    # 1. first frame as a viewer sees it: poll the WebSocket through nginx from power-on
    g.wait_for(r"pinhole: slot a \(trial 0\)", 120)
    timings["uboot_to_kernel"] = g.elapsed()
    frames, err = None, ""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            frames = ws_frames(port, "/ws/h264", 5, timeout=15)
            break
        except Exception as e:
            err = f"{type(e).__name__}: {e}"
            if g.p.poll() is not None:
                break
            time.sleep(1)
    if frames:
        timings["boot_to_first_frame"] = g.elapsed()
        types = sorted({t for f in frames for t in nal_types(f)})
        check(any(t in (1, 5) for t in types) and 7 in types,
              "WebSocket /ws/h264 through nginx delivers H.264 (SPS + slices)",
              f"{len(frames)} messages, {sum(map(len, frames))} bytes, NAL types {types}")
    else:
        check(False, "WebSocket /ws/h264 through nginx delivers H.264", err)

    # 2. boot result from the console
    r = boot_report(g)
    timings["boot_to_running"] = g.elapsed()
    check(r["state"] == "running", "system is running", f"state={r['state']} failed={r['failed']}")
    check(r["failed"] == "none", "no failed units", r["failed"])
    check(r["root"].startswith("squashfs:ro"), "/ is a read-only squashfs", r["root"])
    check(r["slot"] == "a", "booted slot A by default", r["slot"])

    st, out = g.sh("systemctl is-active pinholed; systemctl show -p Type,WatchdogUSec,NRestarts,MainPID --value pinholed")
    check(out.splitlines()[:2] == ["active", "notify"], "pinholed active (Type=notify: READY=1 sent)", out.replace("\n", " "))
    st, out = g.sh("touch /probe 2>&1")
    check("Read-only file system" in out, "writing to / fails (read-only)", out)
    st, out = g.sh("for m in /var /tmp /run/pinhole/hls; do echo $m $(findmnt -no FSTYPE,SIZE $m); done")
    check(out.count("tmpfs") == 3, "/var, /tmp and /run/pinhole/hls are tmpfs (size-capped)", out.replace("\n", " | "))

    st, out = g.sh("cat /sys/class/watchdog/watchdog0/identity /sys/class/watchdog/watchdog0/state 2>&1;"
                   " systemctl show -p RuntimeWatchdogUSec --value")
    check("6300" in out and "active" in out, "hardware watchdog (i6300esb) armed by systemd", out.replace("\n", " | "))
    st, out = g.sh("hostname; resolvectl mdns 2>&1 | tail -n +1 | paste -sd' '")
    check(re.search(r"\(e\w+\): yes", out) is not None, "mDNS enabled on the Ethernet link (pinhole.local)", out.replace("\n", " | "))

    # 3. nginx: UI at /
    try:
        status, headers, body = http_get(port, "/")
        check(status == 200 and b"<html" in body.lower()[:4096] or b"<!doctype" in body.lower()[:200],
              "nginx serves the UI at /", f"{status} {headers.get('Content-Type')} {len(body)} bytes")
    except Exception as e:
        check(False, "nginx serves the UI at /", str(e))

    # 4. HLS in tmpfs (once the daemon has an HLS writer)
    hls = None
    try:
        _, _, body = http_get(port, "/api/status")
        status_json = json.loads(body)
        hls = status_json.get("hls") if isinstance(status_json, dict) else None
    except Exception as e:
        skip("HLS in tmpfs", f"/api/status unavailable ({e})")
    if hls is not None and not hls:
        skip("HLS in tmpfs", f"/api/status reports hls={hls!r}")
    elif hls:
        time.sleep(4)
        st, out = g.sh("ls /run/pinhole/hls | head -50")
        files = out.split()
        check(any(f.endswith((".m4s", ".mp4")) for f in files), "HLS segments land in the tmpfs", " ".join(files[:8]))
        playlists = [f for f in files if f.endswith(".m3u8")] or ["index.m3u8"]
        try:
            status, headers, body = http_get(port, "/hls/" + playlists[0], timeout=20)
            check(status == 200 and body.startswith(b"#EXTM3U")
                  and headers.get("Content-Type", "").startswith("application/vnd.apple.mpegurl"),
                  "nginx proxies the HLS playlist", f"{headers.get('Content-Type')} {headers.get('Cache-Control')}")
            seg = next((f for f in files if f.endswith(".m4s")), None)
            if seg:
                status, headers, body = http_get(port, "/hls/" + seg)
                check(status == 200 and headers.get("Content-Type") == "video/mp4" and "immutable" in headers.get("Cache-Control", ""),
                      "nginx serves segments from tmpfs (video/mp4, immutable)", f"{headers.get('Content-Type')} {headers.get('Cache-Control')}")
        except Exception as e:
            check(False, "nginx serves HLS", str(e))

    # 5. /data grew to the end of the enlarged disk
    st, out = g.sh("findmnt -bno SIZE /data; cat /sys/class/block/vda6/size")
    try:
        fs_bytes, part_sectors = (int(x) for x in out.split()[:2])
        check(part_sectors * 512 > (128 + a.grow_mib // 2) << 20 and fs_bytes > (128 + a.grow_mib // 2) << 20,
              "/data grew to fill the disk", f"partition {part_sectors * 512 >> 20} MiB, fs {fs_bytes >> 20} MiB")
    except ValueError:
        check(False, "/data grew to fill the disk", out)

    # 6. watchdog: a stopped daemon is killed and restarted by systemd
    st, out = g.sh("systemctl show -p MainPID --value pinholed")
    pid = out.strip()
    if pid.isdigit() and pid != "0":
        g.sh(f"kill -STOP {pid}")
        t = time.monotonic()
        new = None
        while time.monotonic() - t < RESTART_BUDGET + 30:
            st, out = g.sh("systemctl show -p MainPID,ActiveState --value pinholed | paste -sd' '")
            parts = out.split()
            if len(parts) == 2 and parts[0] not in (pid, "0") and parts[1] == "active":
                new = parts[0]
                break
            time.sleep(1)
        took = time.monotonic() - t
        timings["watchdog_restart"] = took
        check(new is not None and took <= RESTART_BUDGET,
              f"SIGSTOP'd pinholed restarted by the watchdog within {RESTART_BUDGET}s",
              f"pid {pid} -> {new} in {took:.1f}s")
        st, out = g.sh("journalctl -b -u pinholed --no-pager | grep -iE 'watchdog' | tail -n 2")
        print("   " + out.replace("\n", "\n   "))
    else:
        check(False, "pinholed has a main PID for the watchdog test", out)

    # 7. A/B, one-shot trials (docs/boot-qemu.md)
    if a.no_ab:
        skip("A/B trial boot", "--no-ab")
        return
    # bootsel may be mounted (the OTA code mounts it at /boot/bootsel): go through
    # the mount then, mtools on the bare partition otherwise
    bs = "/dev/disk/by-partlabel/bootsel"
    def bs_read(name):
        return f"if mountpoint -q /boot/bootsel; then cat /boot/bootsel/{name}; else mtype -i {bs} ::{name}; fi"
    request = (f"printf 'try_slot=b\\n' >/tmp/t && if mountpoint -q /boot/bootsel; then cp /tmp/t /boot/bootsel/tryboot.txt;"
               f" else mcopy -o -i {bs} /tmp/t ::tryboot.txt; fi && sync")
    # 7a. a trial that dies before Linux runs (reset at "Starting kernel") falls back
    g.sh(request)
    start = g.mark()
    g.send("systemctl reboot")
    g.wait_for(r"pinhole: slot b \(trial 1\)", 240, start)
    g.wait_for(r"Starting kernel", 60, start)
    g.monitor("system_reset")
    start2 = g.mark()
    m = g.wait_for(r"pinhole: slot (\w) \(trial (\d)\)", 180, start2)
    check(m.group(1) == "a" and m.group(2) == "0", "a trial that never came up falls back to the committed slot A",
          f"after reset: slot {m.group(1)} trial {m.group(2)}")
    r = boot_report(g, start2)
    # 7b. a trial that comes up runs slot B; the next boot follows slot.txt
    g.sh(request)
    start = g.mark()
    g.send("systemctl reboot")
    g.wait_for(r"pinhole: slot b \(trial 1\)", 240, start)
    r = boot_report(g, start)
    check(r["slot"] == "b" and r["state"] == "running", "trial boot runs slot B", f"slot={r['slot']} state={r['state']} failed={r['failed']}")
    st, out = g.sh("grep -o 'pinhole[.][a-z]*=[^ ]*' /proc/cmdline | paste -sd' '; " + bs_read("tryboot.txt"))
    check("pinhole.trial=1" in out and "tried_slot=b" in out, "the trial request was consumed before booting", out.replace("\n", " | "))
    time.sleep(5)
    st, out = g.sh(bs_read("slot.txt"))
    mm = re.search(r"boot_slot=([ab])", out)
    committed = mm.group(1) if mm else "a"
    start = g.mark()
    g.send("systemctl reboot")
    m = g.wait_for(r"pinhole: slot (\w) \(trial (\d)\)", 240, start)
    check(m.group(1) == committed and m.group(2) == "0", "the next boot follows the committed slot (slot.txt), not the used-up trial",
          f"slot.txt says {committed} (the OTA health check may commit a healthy trial); booted {m.group(1)} trial {m.group(2)}")


if __name__ == "__main__":
    sys.exit(main())
