#!/usr/bin/env python3
"""System test: boot the qemu-arm64 image (U-Boot from the disk alone) and
check it like a user and an operator would.

    tests/qemu/boot_test.py IMAGE [--no-ab] [--no-audio] [--log-dir DIR]

Asserts: the system reaches `running` with no failed units; / is a read-only
squashfs; pinholed is active (Type=notify: READY=1 was sent); nginx serves
the UI at /; a WebSocket viewer on /ws/h264 through nginx receives H.264;
HLS files land in the tmpfs (skipped until /api/status reports hls); /data
grew to fill a larger disk; the machine-id is kept in /data (same after a
reboot, none baked into the image); HTTPS turned on through the admin API
serves the device's self-signed certificate for pinhole.local on 443, with
wss:// viewers and HTTP redirected (not from loopback), survives a reboot
and turns off again; ffprobe reads rtsp://…:8554/stream (TCP) through a
host forward; aiortc plays WebRTC (WHEP through nginx, the UDP port forwarded,
offered as an extra candidate); only 80/443, RTSP (8554 TCP, 8554-8555 UDP) and mDNS listen
beyond loopback; sound from
snd-aloop (a loopback ALSA card fed a tone) is served as Opus in /stream.mp4
and survives the device going away (audio_test.py, in this same boot); SIGSTOP to
pinholed gets it restarted by the systemd watchdog; A/B: a one-shot trial of
slot B boots B once, then A again.
Prints timings (boot to first frame, ...) and 'N passed, N failed, N skipped'.
Needs only python3 and qemu-system-aarch64 + u-boot-qemu; no root.
"""
import argparse, base64, hashlib, http.client, json, os, re, shutil, socket, ssl, subprocess, sys, tempfile
import threading, time
import urllib.request

UBOOT = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"
WATCHDOG_SEC = 10          # pinholed.service WatchdogSec=
RESTART_BUDGET = WATCHDOG_SEC + 5 + 2 + 30   # + TimeoutAbortSec + RestartSec + margin (TCG is slow)
ADMIN_PASSWORD = "qemu test admin password"
# Beyond loopback only these may listen: the UI (80, 443), RTSP (8554, its
# RTP/RTCP UDP ports 8554-8555), WebRTC's one UDP port (8189, docs/webrtc.md)
# mDNS and ONVIF's WS-Discovery (3702, docs/rtsp.md). A DHCP client's
# socket (68, 546) takes only its server's replies; it serves nothing.
EXPOSED_OK = {"80/tcp", "443/tcp", "8554/tcp", "8554/udp", "8555/udp", "8189/udp", "5353/udp",
              "3702/udp"}
DHCP_CLIENT = {"68/udp", "546/udp"}

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

    def __init__(self, image, port, log_path, tls_port=None, rtsp_port=None, mem_mib=1024, webrtc_port=None):
        self.port = port
        self.buf = ""
        self.lock = threading.Lock()
        self.log = open(log_path, "w", buffering=1, errors="replace")
        cmd = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", str(mem_mib),
               "-nographic", "-bios", UBOOT,
               "-drive", f"if=none,file={image},format=raw,id=hd", "-device", "virtio-blk-device,drive=hd",
               "-netdev", f"user,id=n,hostfwd=tcp:127.0.0.1:{port}-:80" + (f",hostfwd=tcp:127.0.0.1:{tls_port}-:443" if tls_port else "")
               + (f",hostfwd=tcp:127.0.0.1:{rtsp_port}-:8554" if rtsp_port else "")
               + (f",hostfwd=udp:127.0.0.1:{webrtc_port}-:8189" if webrtc_port else ""), "-device", "virtio-net-device,netdev=n",
               "-device", "i6300esb", "-device", "virtio-rng-device"]
        # QMP for QEMU's own events: a reset by the i6300esb watchdog looks on
        # the console exactly like a reboot (U-Boot's banner); the WATCHDOG
        # event says which one it was.
        self.qmp_dir = tempfile.mkdtemp(prefix="pinhole-qmp-")
        qmp = os.path.join(self.qmp_dir, "qmp.sock")
        # (-qmp alone drops -nographic's monitor on stdio: keep it for monitor())
        cmd += ["-serial", "mon:stdio", "-qmp", f"unix:{qmp},server=on,wait=off"]
        self.events = []   # (seconds since start, event name, data)
        self.log.write("$ " + " ".join(cmd) + "\n")
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        threading.Thread(target=self._qmp_events, args=(qmp,), daemon=True).start()
        self.seq = 0

    def _qmp_events(self, path):
        """Log QEMU's WATCHDOG/RESET/SHUTDOWN/GUEST_PANICKED events into the console log."""
        s = None
        for _ in range(100):
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(path)
                break
            except OSError:
                s.close()
                s = None
                if self.p.poll() is not None:
                    return
                time.sleep(0.2)
        if s is None:
            self.log.write("\n[qemu] no QMP socket: resets are not attributed\n")
            return
        f = s.makefile("rwb", buffering=0)
        try:
            f.readline()  # greeting
            f.write(b'{"execute": "qmp_capabilities"}\n')
            for line in f:
                try:
                    m = json.loads(line)
                except ValueError:
                    continue
                if m.get("event") in ("WATCHDOG", "RESET", "SHUTDOWN", "GUEST_PANICKED"):
                    t = self.elapsed()
                    self.events.append((t, m["event"], m.get("data", {})))
                    # own line in the log only: self.buf is what tests match on
                    self.log.write(f"\n[qemu +{t:.1f}s] {m['event']} {json.dumps(m.get('data', {}))}\n")
        except OSError:
            pass
        finally:
            s.close()

    def watchdog_fired(self):
        """Times (s since start) at which QEMU's i6300esb watchdog fired."""
        return [round(t, 1) for t, e, _ in self.events if e == "WATCHDOG"]

    def _read(self):
        while True:
            b = self.p.stdout.read1(4096)
            if not b:
                return
            s = b.decode(errors="replace").replace("\r", "")
            self.log.write(s)
            with self.lock:
                self.buf += s

    def why_exited(self):
        """The console's last lines and, for a missing ROM or firmware, its package."""
        with self.lock:
            tail = "\n".join(self.buf.strip().splitlines()[-5:])
        hint = subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "qemu-missing.sh")],
                              input=tail, capture_output=True, text=True).stdout.strip()
        return f"; last output:\n{tail}" + (f"\n{hint}" if hint else "")

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
                raise RuntimeError(f"qemu exited ({self.p.returncode}) waiting for {pattern!r}{self.why_exited()}")
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
        shutil.rmtree(self.qmp_dir, ignore_errors=True)


def http_get(port, path, timeout=10):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, dict(r.headers), r.read()


def onvif_post(port, path, ns, op, inner=""):
    body = (f'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body>'
            f'<o:{op} xmlns:o="{ns}">{inner}</o:{op}></e:Body></e:Envelope>').encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                 headers={"Content-Type": "application/soap+xml"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read().decode(errors="replace")


def onvif_check(port):
    """ONVIF's device and media services answer through nginx (no viewer
    password is set on the test image: the LAN watches without one)."""
    try:
        st, body = onvif_post(port, "/onvif/device_service", "http://www.onvif.org/ver10/device/wsdl",
                              "GetSystemDateAndTime")
        check(st == 200 and "<tt:UTCDateTime>" in body, "ONVIF GetSystemDateAndTime through nginx",
              f"{st} {body[:200]}")
        st, body = onvif_post(port, "/onvif/media_service", "http://www.onvif.org/ver10/media/wsdl",
                              "GetStreamUri", "<o:ProfileToken>main</o:ProfileToken>")
        check(st == 200 and ":8554/stream</tt:Uri>" in body, "ONVIF GetStreamUri names RTSP on 8554",
              f"{st} {body[:300]}")
    except Exception as e:
        check(False, "ONVIF through nginx", f"{type(e).__name__}: {e}")


def tls_context():
    """The device's certificate is self-signed: checked by fingerprint, not by a CA."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def ws_frames(port, path, count, timeout, tls=False):
    """Minimal RFC 6455 client: return the first `count` binary messages."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls:
        s = tls_context().wrap_socket(s, server_hostname="pinhole.local")
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


def request(port, method, path, body=None, headers=None, tls=False, timeout=15):
    """One HTTP(S) request, redirects not followed: (status, headers, body, peer cert DER)."""
    if tls:
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=tls_context())
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        der = c.sock.getpeercert(binary_form=True) if tls else None
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data, der
    finally:
        c.close()


def admin_cookie(port, tls=False):
    """Sets the admin password on first use (no default exists), logs in after that."""
    origin = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    h = {"Content-Type": "application/json", "Origin": origin}
    body = json.dumps({"password": ADMIN_PASSWORD})
    for path in ("/api/auth/setup", "/api/auth/login"):
        st, hd, data, _ = request(port, "POST", path, body, h, tls)
        if st == 200 and "set-cookie" in hd:
            return hd["set-cookie"].split(";")[0]
    raise RuntimeError(f"cannot log in as admin: {st} {data[:200]!r}")


def set_https(port, on, tls=False):
    origin = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    cookie = admin_cookie(port, tls)
    st, _, data, _ = request(port, "PUT", "/api/https", json.dumps({"enabled": on}),
                             {"Content-Type": "application/json", "Origin": origin, "Cookie": cookie}, tls)
    return st, data


def wait_tls(port, want_up, timeout=90):
    """Poll 443 (forwarded) until it serves (want_up) or stops serving; the served cert's DER."""
    end = time.monotonic() + timeout
    last = ""
    while time.monotonic() < end:
        try:
            st, _, _, der = request(port, "GET", "/", tls=True, timeout=10)
            if want_up and st == 200:
                return der
            last = f"HTTP {st}"
        except (OSError, ssl.SSLError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
            if not want_up:
                return last
        time.sleep(2)
    raise TimeoutError(f"443 still {'down' if want_up else 'up'} after {timeout}s ({last})")


def exposed_ports(ss_out):
    """`ss -H -tuln` -> {'80/tcp', ...} for sockets not bound to loopback only."""
    out = set()
    for line in ss_out.splitlines():
        f = line.split()
        if len(f) < 5 or f[0] not in ("tcp", "udp"):
            continue
        addr, _, port = f[4].rpartition(":")
        addr = addr.strip("[]").split("%")[0]
        if addr.startswith("127.") or addr == "::1":
            continue
        out.add(f"{port}/{f[0]}")
    return out


def machine_id(g):
    """(running id, /data copy, what /etc/machine-id is mounted from)."""
    _, out = g.sh("cat /etc/machine-id; cat /data/machine-id 2>/dev/null || echo -; findmnt -no SOURCE /etc/machine-id || echo -")
    lines = (out.splitlines() + ["", "", ""])[:3]
    return lines[0].strip(), lines[1].strip(), lines[2].strip()


def valid_id(i):
    return re.fullmatch(r"[0-9a-f]{32}", i) is not None and i != "0" * 32


def nal_types(data):
    return [data[m.end()] & 0x1F for m in re.finditer(b"\x00\x00\x01", data) if m.end() < len(data)]


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
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
    ap.add_argument("--no-audio", action="store_true", help="skip the snd-aloop audio checks (tests/qemu/audio_test.py)")
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
    port, tls_port, rtsp_port = free_port(), free_port(), free_port()
    webrtc_port = free_port(socket.SOCK_DGRAM)
    g = Guest(disk, port, log_path, tls_port, rtsp_port, webrtc_port=webrtc_port)
    try:
        run_checks(g, port, tls_port, a, rtsp_port, webrtc_port)
    except Exception as e:  # a hang or crash is a failed check, with the console tail to look at
        check(False, "test ran to the end", f"{type(e).__name__}: {e}")
        with g.lock:
            tail = g.buf[-3000:]
        print("---- console tail ----\n" + tail + "\n----------------------", flush=True)
    finally:
        if g.watchdog_fired():  # any of them is a hang the guest did not recover from by itself
            print(f"note: QEMU's i6300esb watchdog reset the guest at {g.watchdog_fired()} s", flush=True)
        g.stop()
        if not a.log_dir:
            shutil.copy(log_path, os.path.join(os.environ.get("TMPDIR", "/tmp"), "pinhole-qemu-console.log"))
        shutil.rmtree(tmp, ignore_errors=True)
    print("timings: " + ", ".join(f"{k}={v:.1f}s" for k, v in timings.items()))
    print(f"{results['passed']} passed, {results['failed']} failed, {results['skipped']} skipped")
    return 1 if results["failed"] else 0


def rtsp_check(port, rtsp_port):
    """ffprobe (on the host) reads the stream over RTSP/TCP through the
    forward to the guest's 8554; /api/status names the port."""
    try:
        _, _, body = http_get(port, "/api/status")
        st = json.loads(body).get("rtsp")
        check(isinstance(st, dict) and st.get("port") == 8554 and st.get("path") == "/stream",
              "/api/status reports RTSP on 8554", repr(st))
    except Exception as e:
        check(False, "/api/status reports RTSP on 8554", f"{type(e).__name__}: {e}")
    if not shutil.which("ffprobe"):
        skip("ffprobe reads RTSP", "no ffprobe on this host (ci/install-deps.sh installs it)")
        return
    t0 = time.monotonic()
    try:
        p = subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-timeout", "30000000",
                            "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0",
                            f"rtsp://127.0.0.1:{rtsp_port}/stream"],
                           capture_output=True, text=True, timeout=120)
        out = p.stdout.strip()
        check(p.returncode == 0 and out.startswith("h264,") and len(out.split(",")) == 3,
              "ffprobe reads H.264 over RTSP/TCP (port 8554) from the booted image",
              f"{out!r} in {time.monotonic() - t0:.1f}s {p.stderr.strip()[:300]}")
    except Exception as e:
        check(False, "ffprobe reads H.264 over RTSP/TCP from the booted image", f"{type(e).__name__}: {e}")


PUSH_ADDR = "198.51.100.77"   # TEST-NET-2: not a LAN address for the guest
NGINX_RTMP = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


def push_check(port):
    """The guest's pinholed pushes RTMP to 198.51.100.77, which this host
    answers itself (the address on its loopback, nginx-rtmp bound to it):
    QEMU's user network makes the guest's connection from the host, so the
    guest sees an internet address, and its unit's sandbox must let it out.
    The inbound half (a non-LAN peer refused) cannot be shown here: QEMU's
    forwards reach the guest from 10.0.2.2, a LAN address; see
    crates/pinholed/tests/inbound.rs."""
    what = f"the sandboxed daemon pushes RTMP to a non-LAN address ({PUSH_ADDR})"
    if os.geteuid() != 0 or not os.path.exists(NGINX_RTMP) or not shutil.which("ffprobe"):
        skip(what, "needs root (an address on lo), nginx-rtmp and ffprobe (ci/install-deps.sh)")
        return
    key = "qemu-push-key-0123456789"
    rtmp_port = free_port()
    tmp = tempfile.mkdtemp(prefix="pinhole-qemu-rtmp-")
    added = subprocess.run(["ip", "addr", "add", f"{PUSH_ADDR}/32", "dev", "lo"],
                           capture_output=True).returncode == 0
    nginx = None
    try:
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(f"load_module {NGINX_RTMP};\ndaemon off;\npid {tmp}/nginx.pid;\n"
                    f"error_log {tmp}/error.log info;\nevents {{ worker_connections 64; }}\n"
                    f"rtmp {{ server {{ listen {PUSH_ADDR}:{rtmp_port}; chunk_size 4096;\n"
                    "  application live { live on; record off; } } }\n")
        nginx = subprocess.Popen(["nginx", "-p", tmp, "-c", os.path.join(tmp, "nginx.conf")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        origin = f"http://127.0.0.1:{port}"
        h = {"Content-Type": "application/json", "Origin": origin, "Cookie": admin_cookie(port)}
        st, _, data, _ = request(port, "POST", "/api/push",
                                 json.dumps({"url": f"rtmp://{PUSH_ADDR}:{rtmp_port}/live", "key": key}), h)
        if st != 201:
            check(False, what, f"POST /api/push: {st} {data[:200]!r}")
            return
        target = json.loads(data)["targets"][-1]
        deadline = time.monotonic() + 90   # TCG is slow; the backoff tops at 30 s
        while time.monotonic() < deadline:
            _, _, data, _ = request(port, "GET", "/api/push", None, h)
            target = next(t for t in json.loads(data)["targets"] if t["id"] == target["id"])
            if target["state"] == "publishing" and target["frames"] > 10:
                break
            time.sleep(1)
        p = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=codec_name", "-of", "csv=p=0", f"rtmp://{PUSH_ADDR}:{rtmp_port}/live/{key}"],
                           capture_output=True, text=True, timeout=60)
        check(target["state"] == "publishing" and p.stdout.strip() == "h264", what,
              f"{target['state']}, {target['frames']} frames, last error {target['last_error']!r}; "
              f"ffprobe {p.stdout.strip()!r} {p.stderr.strip()[:200]}")
        check(key not in json.dumps(target), "the push target's key is not shown back")
        request(port, "DELETE", f"/api/push/{target['id']}", None, h)
    except Exception as e:
        check(False, what, f"{type(e).__name__}: {e}")
    finally:
        if nginx:
            nginx.terminate()
            nginx.wait(timeout=10)
        if added:
            subprocess.run(["ip", "addr", "del", f"{PUSH_ADDR}/32", "dev", "lo"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


WEBRTC_VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "webrtc", "venv.sh")
WHEP_CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "webrtc", "whep_client.py")


def webrtc_check(g, port, webrtc_port):
    """aiortc (not our WebRTC stack) plays WHEP through the image's nginx and
    the one UDP port (8189), forwarded from the host. The guest's own address
    (10.0.2.15) is not reachable from here, so, as behind a router's port
    forward, the daemon is told to offer the forwarded address too
    (`[webrtc] extra_candidates`, docs/webrtc.md) and restarted."""
    what = "aiortc plays WebRTC (WHEP via nginx, UDP 8189) from the booted image"
    try:
        py = subprocess.run([WEBRTC_VENV], capture_output=True, text=True, timeout=600).stdout.strip()
    except Exception:
        py = ""
    if not py:
        skip(what, "no aiortc venv (tests/webrtc/venv.sh, made by ci/install-deps.sh)")
        return
    conf = f'[webrtc]\nextra_candidates = ["127.0.0.1:{webrtc_port}"]\n'
    st, out = g.sh(f"printf '{conf}' >>/data/pinhole/config.toml && systemctl restart pinholed"
                   " && systemctl is-active pinholed", timeout=120)
    if not check(st == 0 and out.strip().endswith("active"), "pinholed restarts with an extra WebRTC candidate", out):
        return
    t = time.monotonic()
    # The first frame only after a keyframe from a restarted daemon on TCG: allow 20 s.
    for attempt in range(2):
        try:
            p = subprocess.run([py, WHEP_CLIENT, f"http://127.0.0.1:{port}/whep", "--seconds", "20"],
                               capture_output=True, text=True, timeout=120)
            r = json.loads(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else {}
        except Exception as e:
            r, p = {"error": f"{type(e).__name__}: {e}"}, None
        if r.get("frames", 0) >= 30 or attempt == 1:
            break
        time.sleep(5)  # the daemon may still be starting its source
    timings["webrtc"] = time.monotonic() - t
    check(r.get("frames", 0) >= 30 and r.get("width", 0) > 0 and ["DELETE", 200] in [list(x) for x in r.get("steps", [])],
          what, json.dumps({k: r.get(k) for k in ("frames", "fps", "width", "height", "steps", "error")})
          + ("" if p is None or p.returncode == 0 else f" rc {p.returncode} {p.stderr.strip()[-300:]}"))


def run_checks(g, port, tls_port, a, rtsp_port=None, webrtc_port=None):
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

    # 3b. RTSP on 8554 (docs/rtsp.md)
    if rtsp_port:
        rtsp_check(port, rtsp_port)

    # 3c. ONVIF through nginx (docs/rtsp.md): the pre-auth clock and the
    # stream URL, which names the RTSP port.
    onvif_check(port)

    # 3d. Push out to an address outside the LAN, from inside the sandboxed
    # unit (docs/security.md, "Inbound and outbound").
    push_check(port)

    # 3e. WebRTC through the forwarded UDP port (docs/webrtc.md)
    if webrtc_port:
        webrtc_check(g, port, webrtc_port)

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

    # 5b. machine-id: generated on first boot, kept in /data (docs/machine-id.md)
    mid, saved, src = machine_id(g)
    check(valid_id(mid) and saved == mid, "the first boot's machine-id is saved to /data/machine-id",
          f"running {mid or '-'}, /data {saved}, mounted from {src}")
    st, out = g.sh("mount -t squashfs -o ro /dev/disk/by-partlabel/root_a /mnt && wc -c </mnt/etc/machine-id; umount /mnt")
    check(st == 0 and out.strip() == "0", "the image carries no machine-id (each card makes its own)",
          f"/etc/machine-id in root_a: {out.strip()} bytes")
    first_id = mid

    # 5c. sound from a real ALSA device (snd-aloop), in this boot: CI boots once.
    # Before HTTPS: with HTTPS on, plain HTTP through the forward is redirected.
    if a.no_audio:
        skip("audio through snd-aloop", "--no-audio")
    else:
        t = time.monotonic()
        try:
            from audio_test import audio_checks
            audio_checks(g, port, check)
        except Exception as e:
            check(False, "audio checks ran to the end", f"{type(e).__name__}: {e}")
        timings["audio"] = time.monotonic() - t

    # 5d. HTTPS through the admin API (docs/security.md "HTTPS (optional)")
    fp = https_checks(g, port, tls_port)

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
    # U-Boot loads a 38 MB Image and 10 MB initrd (trixie): 60 s ran out at load ~18
    g.wait_for(r"Starting kernel", 180, start)
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
    mid, saved, src = machine_id(g)
    check(mid == first_id and saved == first_id and "pinhole-machine-id" in src,
          "the machine-id is the same after reboots (bound from /data by the initramfs)",
          f"first boot {first_id}, now {mid}, mounted from {src}")
    https_after_reboot(g, port, tls_port, fp)
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


def https_checks(g, port, tls_port):
    """Turn HTTPS on like an admin would; returns the served certificate's sha256."""
    try:
        st, data = set_https(port, True)
        check(st == 200 and json.loads(data).get("enabled") is True, "PUT /api/https {enabled:true} as admin", f"{st} {data[:100]!r}")
        t = time.monotonic()
        der = wait_tls(tls_port, True)
        timings["https_on"] = time.monotonic() - t
    except Exception as e:
        check(False, "HTTPS comes up on 443", f"{type(e).__name__}: {e}")
        return None
    fp = hashlib.sha256(der).hexdigest()
    _, out = g.sh("openssl x509 -in /data/tls/cert.pem -outform DER | sha256sum | cut -c1-64;"
                  " openssl x509 -in /data/tls/cert.pem -noout -subject -issuer -ext subjectAltName;"
                  " openssl pkey -in /data/tls/key.pem -noout -text | grep -m1 'NIST CURVE';"
                  " stat -c '%a %U' /data/tls /data/tls/key.pem | paste -sd' '")
    lines = out.splitlines()
    check(lines and lines[0].strip() == fp, "443 serves the certificate the device made (/data/tls/cert.pem)", f"sha256 {fp[:16]}…")
    flat = out.replace(" = ", "=")  # openssl 3.0 (bookworm) prints "CN = x", 3.5 (trixie) "CN=x"
    check("subject=CN=pinhole.local" in flat and "issuer=CN=pinhole.local" in flat and "DNS:pinhole.local" in out
          and "P-256" in out, "self-signed P-256 certificate for pinhole.local", " | ".join(lines[1:]))
    check("700 root" in out and "600 root" in out, "the TLS key is root's alone (/data/tls 0700, key 0600)", lines[-1] if lines else "")
    try:
        st, hd, body, _ = request(tls_port, "GET", "/", tls=True)
        check(st == 200 and b"<html" in body.lower()[:4096], "the UI over HTTPS", f"{st} {len(body)} bytes")
        st, hd, _, _ = request(port, "GET", "/index.html?x=1")
        check(st == 301 and hd.get("location") == "https://127.0.0.1/index.html?x=1",
              "plain HTTP from the LAN redirects to HTTPS", f"{st} {hd.get('location')}")
        frames = ws_frames(tls_port, "/ws/h264", 3, timeout=20, tls=True)
        types = sorted({t for f in frames for t in nal_types(f)})
        check(any(t in (1, 5) for t in types), "wss:// /ws/h264 through nginx delivers H.264", f"NAL types {types}")
    except Exception as e:
        check(False, "HTTPS serves the UI, redirects and wss", f"{type(e).__name__}: {e}")
    st, out = g.sh(r"exec 3<>/dev/tcp/127.0.0.1/80 && printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 && head -n1 <&3; exec 3<&-")
    check(" 200 " in out, "plain HTTP from loopback is not redirected", out.strip())
    st, out = g.sh("ss -H -tuln")
    exposed = exposed_ports(out)
    check(exposed - DHCP_CLIENT <= EXPOSED_OK and {"80/tcp", "443/tcp", "5353/udp"} <= exposed,
          "only 80/443, RTSP, WebRTC's UDP port and mDNS listen beyond loopback", " ".join(sorted(exposed)))
    return fp


def https_after_reboot(g, port, tls_port, fp):
    """HTTPS stays on across a reboot with the same certificate, then turns off."""
    if fp is None:
        skip("HTTPS after a reboot", "HTTPS never came up")
        return
    try:
        der = wait_tls(tls_port, True, timeout=120)
        check(hashlib.sha256(der).hexdigest() == fp, "after a reboot HTTPS is on with the same certificate",
              hashlib.sha256(der).hexdigest()[:16] + "…")
        st, data = set_https(tls_port, False, tls=True)
        check(st == 200, "PUT /api/https {enabled:false} over HTTPS", f"{st} {data[:100]!r}")
        why = wait_tls(tls_port, False)
        st, _, body, _ = request(port, "GET", "/")
        check(st == 200, "HTTPS off again: 443 closed, HTTP serves without a redirect", f"443: {why}; HTTP {st}")
    except Exception as e:
        check(False, "HTTPS after a reboot", f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    sys.exit(main())
