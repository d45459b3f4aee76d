#!/usr/bin/env python3
"""System test of OTA updates on the qemu-arm64 image (docs/ota.md).

    tests/qemu/ota_test.py IMAGE_V1 --good V2.phb [--next V3.phb] [--bad V4.phb]
        [--forged F.phb] [--wrong-board W.phb] [--quick] [--cuts N] [--seed S]
        [--log-dir DIR]

Boots IMAGE_V1 (slot a) and drives the device over HTTP through the forwarded
nginx port like the web UI would (admin password set with /api/auth/setup if
the device asks for one). Scenarios, in order:
  good A->B    upload V2: 200 staged, reboot into b as a trial, commit
               (GET /api/update: active_slot b, trial false, version of V2);
               install time and pinholed VmHWM before/after are reported
  refused      forged signature (403), wrong board (422), flipped signature
               byte (403), flipped image byte (400), truncated upload (400),
               client disconnect mid-way: nothing changes, the next good
               update still works
  next B->A    upload V3 (back to slot a)
  bad          V4 whose pinholed never becomes healthy: the device returns to
               the old slot by itself (pinholed's deadline or the trial guard)
  power cuts   kill QEMU at seeded-random points (during upload, right after
               staged, during the trial boot, right after commit): each time
               the device boots a working slot and the /data marker survives
--quick: good A->B, one refused upload, 3 power cuts. Prints a results table.
"""
import argparse, json, os, random, re, shutil, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import boot_test as bt  # noqa: E402  (Guest, check, boot_report, ...)
from boot_test import check, skip  # noqa: E402

PASSWORD = "ota-test-password-1"
table = []   # (scenario, expected, observed, ok)


def row(scenario, expected, observed, ok):
    table.append((scenario, expected, observed, ok))
    check(ok, f"{scenario}: {expected}", observed)


class Device:
    def __init__(self, disk, port, log_path):
        self.disk, self.port, self.log_path = disk, port, log_path
        self.g = None
        self.cookie = None

    # ---- VM ----
    def start(self):
        self.g = bt.Guest(self.disk, self.port, self.log_path)
        self.cookie = None
        return self.g

    def power_cut(self):
        self.g.p.kill()
        self.g.p.wait()
        self.g = None

    def booted(self, start=0, timeout=900):
        """Wait for the console login and a finished boot; returns boot_report."""
        r = bt.boot_report(self.g, start, timeout)
        self.cookie = None  # sessions live in pinholed's memory: a reboot ends them
        self.wait_api()
        return r

    def wait_api(self, timeout=300):
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            try:
                self.login()
                st, body = self.req("GET", "/api/update")
                if st == 200:
                    return json.loads(body)
                last = f"{st} {body[:200]!r}"
            except Exception as e:  # noqa: BLE001
                last = f"{type(e).__name__}: {e}"
            time.sleep(2)
        raise TimeoutError(f"/api/update not answering: {last}")

    # ---- HTTP (raw sockets: streaming uploads, mid-way disconnects) ----
    def _headers(self, method, path, length=None, ctype=None):
        h = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}",
             f"Origin: http://127.0.0.1:{self.port}", "Connection: close"]
        if self.cookie:
            h.append(f"Cookie: {self.cookie}")
        if ctype:
            h.append(f"Content-Type: {ctype}")
        if length is not None:
            h.append(f"Content-Length: {length}")
        return ("\r\n".join(h) + "\r\n\r\n").encode()

    @staticmethod
    def _response(s):
        buf = b""
        while True:
            c = s.recv(65536)
            if not c:
                break
            buf += c
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        hdrs = [l.split(":", 1) for l in lines[1:] if ":" in l]
        if any(k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in hdrs):
            out, rest = b"", body
            while rest:
                n, _, rest = rest.partition(b"\r\n")
                n = int(n.split(b";")[0] or b"0", 16)
                if n == 0:
                    break
                out, rest = out + rest[:n], rest[n + 2:]
            body = out
        return status, hdrs, body.decode(errors="replace")

    def req(self, method, path, body=b"", timeout=30):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            s.sendall(self._headers(method, path, len(body) if method == "POST" else None,
                                    "application/json" if body else None) + body)
            st, hdrs, text = self._response(s)
        finally:
            s.close()
        for k, v in hdrs:
            if k.lower() == "set-cookie" and "session" in v.lower():
                self.cookie = v.strip().split(";")[0]
        return st, text

    def login(self):
        st, body = self.req("GET", "/api/auth")
        if st != 200:
            return  # no auth on this build
        a = json.loads(body)
        if a.get("logged_in"):
            return
        pw = json.dumps({"password": PASSWORD}).encode()
        if a.get("setup_needed"):
            st, body = self.req("POST", "/api/auth/setup", pw)
        else:
            st, body = self.req("POST", "/api/auth/login", pw)
        if st != 200:
            raise RuntimeError(f"login: {st} {body[:200]}")

    def upload(self, path, limit=None, corrupt_at=None, stop_after=None, on_progress=None, timeout=900):
        """POST a bundle. limit: declare and send only that many bytes (truncated);
        corrupt_at: flip that byte; stop_after: send that many bytes of a full
        Content-Length, then close (disconnect). on_progress(sent) may return True
        to stop sending (power cut). Returns (status, body, seconds)."""
        size = os.path.getsize(path)
        total = size if limit is None else limit
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            s.sendall(self._headers("POST", "/api/update", total, "application/octet-stream"))
            sent = 0
            with open(path, "rb") as f:
                while sent < total:
                    chunk = bytearray(f.read(min(1 << 20, total - sent)))
                    if not chunk:
                        break
                    if corrupt_at is not None and sent <= corrupt_at < sent + len(chunk):
                        chunk[corrupt_at - sent] ^= 0x40
                    if stop_after is not None and sent + len(chunk) > stop_after:
                        s.sendall(chunk[:stop_after - sent])
                        return None, "disconnected", time.monotonic() - t0
                    try:
                        s.sendall(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        break  # the server answered early (refused); read its answer
                    sent += len(chunk)
                    if on_progress and on_progress(sent):
                        return None, "cut", time.monotonic() - t0
            try:
                st, _, body = self._response(s)
            except (ConnectionResetError, socket.timeout) as e:
                return 0, f"{type(e).__name__}", time.monotonic() - t0
            return st, body, time.monotonic() - t0
        finally:
            s.close()

    def status(self):
        self.login()
        st, body = self.req("GET", "/api/update")
        return json.loads(body) if st == 200 else {"http": st, "body": body[:200]}

    def sh(self, cmd, timeout=60):
        return self.g.sh(cmd, timeout)

    def hwm(self):
        _, out = self.sh("p=$(systemctl show -p MainPID --value pinholed); grep -E 'VmHWM|VmRSS' /proc/$p/status | tr -s ' ' | paste -sd' '")
        return out.strip()

    def wait_status(self, pred, timeout):
        end = time.monotonic() + timeout
        st = None
        while time.monotonic() < end:
            try:
                st = self.status()
                if pred(st):
                    return st
            except Exception as e:  # noqa: BLE001
                st = {"error": f"{type(e).__name__}: {e}"}
            time.sleep(3)
        return st


def marker_ok(dev, value):
    _, out = dev.sh("cat /data/ota-test-marker 2>&1")
    return out.strip() == value, out.strip()


def install(dev, bundle, want_slot, want_version, what, measure=False):
    """Upload a good bundle, follow the trial reboot, wait for the commit."""
    before = dev.hwm() if measure else None
    start = dev.g.mark()
    st, body, secs = dev.upload(bundle)
    row(what, "200 staged", f"{st} {body.strip()[:120]} in {secs:.1f}s", st == 200 and "staged" in body)
    if st != 200:
        return False
    if measure:
        bt.timings["install_upload_s"] = secs
        try:  # pinholed is still up for reboot_delay (2 s)
            after = dev.hwm()
        except Exception as e:  # noqa: BLE001
            after = f"? ({e})"
        print(f"   pinholed before upload: {before}\n   pinholed after upload:  {after}", flush=True)
        table.append(("memory", "VmHWM before/after upload", f"{before} / {after}", True))
    dev.g.wait_for(rf"pinhole: slot {want_slot} \(trial 1\)", 300, start)
    r = dev.booted(start)
    row(what + " trial", f"trial boot of slot {want_slot}", f"slot={r['slot']} state={r['state']}", r["slot"] == want_slot)
    s = dev.wait_status(lambda s: s.get("active_slot") == want_slot and s.get("trial") is False, 400)
    ok = s.get("active_slot") == want_slot and s.get("trial") is False and s.get("version") == want_version
    row(what + " commit", f"committed {want_slot}, version {want_version}", json.dumps(s)[:200], ok)
    _, out = dev.sh("cat /boot/bootsel/slot.txt")
    check(f"boot_slot={want_slot}" in out, f"slot.txt commits {want_slot}", out)
    return ok


def bundle_version(path):
    out = subprocess.run([TOOL, "inspect", path], capture_output=True, text=True).stdout
    m = re.search(r'"version":\s*"([^"]+)"', out)
    return m.group(1) if m else "?"


def refused(dev, name, bundle, expect_status, **kw):
    before = dev.status()
    st, body, secs = dev.upload(bundle, **kw)
    after = dev.wait_status(lambda s: s.get("phase") in ("idle", "failed", "error") or "error" in s, 60)
    _, sl = dev.sh("cat /boot/bootsel/slot.txt; cat /boot/bootsel/tryboot.txt 2>/dev/null || echo no-tryboot")
    unchanged = after.get("active_slot") == before.get("active_slot") and after.get("trial") is False \
        and "try_slot" not in sl
    # nginx (proxy_request_buffering off) answers 502 when pinholed refuses
    # early and closes before the whole body was forwarded; the device's own
    # verdict is then in GET /api/update's error. Both count as refused.
    status_ok = expect_status is None or st == expect_status or (st == 502 and after.get("error"))
    ok = bool(status_ok) and unchanged
    row(f"refused: {name}", f"{expect_status or 'no answer'}, nothing changed",
        f"{st} {body.strip()[:100]!r}; phase={after.get('phase')} err={str(after.get('error'))[:60]}; {sl.replace(chr(10), ' ')}", ok)


def power_cut(dev, rng, point, bundle, marker):
    """Kill QEMU at `point` while installing `bundle`; reboot; check."""
    cur = dev.status()
    old_slot = cur.get("active_slot")
    size = os.path.getsize(bundle)
    detail = ""
    if point == "upload":
        at = rng.randrange(1 << 20, size - (1 << 20))
        detail = f"at byte {at} of {size}"
        dev.upload(bundle, on_progress=lambda sent: sent >= at and (dev.power_cut() or True))
    else:
        start = dev.g.mark()
        st, body, _ = dev.upload(bundle)
        if st != 200:
            row(f"power cut {point}", "upload accepted first", f"{st} {body[:100]}", False)
            return
        if point == "staged":
            d = rng.uniform(0, 1.5)
            time.sleep(d)
            detail = f"{d:.2f}s after 200 staged"
        elif point == "trial":
            dev.g.wait_for(r"pinhole: slot [ab] \(trial 1\)", 300, start)
            d = rng.uniform(5, 60)
            time.sleep(d)
            detail = f"{d:.0f}s into the trial boot"
        elif point == "commit":
            dev.g.wait_for(r"pinhole: slot [ab] \(trial 1\)", 300, start)
            dev.g.login(900, start)
            end = time.monotonic() + 400
            while time.monotonic() < end:
                _, out = dev.sh("cat /boot/bootsel/slot.txt")
                if f"boot_slot={old_slot}" not in out:
                    break
                time.sleep(0.5)
            detail = "right after slot.txt changed"
        dev.power_cut()
    start = 0
    dev.start()
    try:
        r = dev.booted(start)
        s = dev.status()
        ok_m, m = marker_ok(dev, marker)
        ok = r["state"] == "running" and ok_m and s.get("trial") is False or \
            (r["state"] == "running" and ok_m and s.get("trial") is True)  # a trial that then commits is fine
        if s.get("trial"):
            s = dev.wait_status(lambda x: x.get("trial") is False, 400)
        ok = ok and s.get("trial") is False
        row(f"power cut {point}", "boots a working slot, /data intact",
            f"{detail}; slot={r['slot']} state={r['state']} active={s.get('active_slot')} version={s.get('version')} marker={'ok' if ok_m else m}", ok)
    except Exception as e:  # noqa: BLE001
        row(f"power cut {point}", "boots a working slot, /data intact", f"{detail}; {type(e).__name__}: {e}", False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--good", required=True, help="bundle of a newer version (A->B)")
    ap.add_argument("--next", help="bundle of a still newer version (B->A)")
    ap.add_argument("--bad", help="signed bundle whose pinholed never becomes healthy")
    ap.add_argument("--forged", help="bundle signed with an untrusted key")
    ap.add_argument("--wrong-board", help="bundle for another board")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cuts", type=int, default=10)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--tool", default="target/release/pinhole-bundle")
    ap.add_argument("--log-dir")
    ap.add_argument("--only", default="refused,good,next,bad,cuts",
                    help="comma list of scenarios to run (refused,good,next,bad,cuts)")
    a = ap.parse_args()
    global TOOL
    TOOL = a.tool
    rng = random.Random(a.seed)
    tmp = tempfile.mkdtemp(prefix="pinhole-ota-")
    logdir = a.log_dir or tmp
    os.makedirs(logdir, exist_ok=True)
    disk = os.path.join(tmp, "disk.img")
    subprocess.run(["cp", "--sparse=always", a.image, disk], check=True)
    dev = Device(disk, bt.free_port(), os.path.join(logdir, "ota-console.log"))
    print(f"image {a.image}, bundle {a.good} ({os.path.getsize(a.good) >> 20} MiB), seed {a.seed}, "
          f"console log {dev.log_path}", flush=True)
    table.append(("bundle size", "", f"{os.path.getsize(a.good)} bytes ({os.path.getsize(a.good) / 2**20:.1f} MiB)", True))
    t0 = time.monotonic()
    dev.start()
    try:
        run(dev, a, rng)
    except Exception as e:  # noqa: BLE001
        check(False, "test ran to the end", f"{type(e).__name__}: {e}")
        if dev.g:
            with dev.g.lock:
                print("---- console tail ----\n" + dev.g.buf[-3000:] + "\n----", flush=True)
    finally:
        if dev.g:
            dev.g.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n| scenario | expected | observed | result |\n|---|---|---|---|")
    for s, e, o, ok in table:
        print(f"| {s} | {e} | {o.replace('|', '/')} | {'ok' if ok else 'FAIL'} |")
    print(f"total {time.monotonic() - t0:.0f}s; timings: " + ", ".join(f"{k}={v:.1f}s" for k, v in bt.timings.items()))
    r = bt.results
    print(f"{r['passed']} passed, {r['failed']} failed, {r['skipped']} skipped")
    return 1 if r["failed"] else 0


def run(dev, a, rng):
    r = dev.booted(0)
    check(r["state"] == "running" and r["slot"] == "a", "v1 boots slot a", f"{r}")
    s = dev.status()
    print(f"   /api/update: {s}", flush=True)
    marker = f"ota-{a.seed}-{int(time.time())}"
    dev.sh(f"echo {marker} >/data/ota-test-marker && sync")
    v_good = bundle_version(a.good)

    only = set(a.only.split(","))
    # 1. refused first (the device is on v1, slot a)
    if "refused" in only and a.forged:
        refused(dev, "forged signature (other key)", a.forged, 403)
    if "refused" in only:
        refused(dev, "flipped signature byte", a.good, 403, corrupt_at=30)
    if not a.quick and "refused" in only:
        if a.wrong_board:
            refused(dev, "wrong board", a.wrong_board, 422)
        size = os.path.getsize(a.good)
        refused(dev, "flipped image byte", a.good, 400, corrupt_at=size - 4096)
        refused(dev, "truncated upload", a.good, 400, limit=size // 2)
        refused(dev, "client disconnect mid-way", a.good, None, stop_after=size // 3)

    # 2. good update A -> B (measured)
    if "good" in only:
        install(dev, a.good, "b", v_good, "update A->B", measure=True)
        ok_m, m = marker_ok(dev, marker)
        check(ok_m, "/data marker survives the update", m)

    if not a.quick and a.next and "next" in only:
        install(dev, a.next, "a", bundle_version(a.next), "update B->A")
    if not a.quick and a.bad and "bad" in only:
        cur = dev.status()
        start = dev.g.mark()
        st, body, _ = dev.upload(a.bad)
        row("bad update", "accepted (signed), then rolled back", f"{st} {body.strip()[:80]}", st == 200)
        m_ = dev.g.wait_for(r"pinhole: slot [ab] \(trial 1\)", 300, start)
        t_trial = time.monotonic()
        back = dev.g.wait_for(rf"pinhole: slot {cur.get('active_slot')} \(trial 0\)", 900, m_.end())
        took = time.monotonic() - t_trial
        r = dev.booted(back.end())
        s = dev.status()
        row("bad update rollback", f"back on slot {cur.get('active_slot')} version {cur.get('version')}",
            f"after {took:.0f}s: slot={r['slot']} active={s.get('active_slot')} version={s.get('version')} trial={s.get('trial')}",
            s.get("active_slot") == cur.get("active_slot") and s.get("version") == cur.get("version"))

    # 3. power cuts: alternate the bundles so each install goes to the inactive slot
    if "cuts" not in only:
        return
    points = ["upload", "staged", "trial"]
    if not a.quick:  # each point once, then seeded-random ones up to --cuts
        points = ["staged", "commit", "upload", "trial"]
        points += [rng.choice(points) for _ in range(max(0, a.cuts - 4))]
    # bundles alternate v2/v3, so the operator setting allow_downgrade (the
    # user config overrides the image's system config) is turned on for this
    dev.sh("printf '\\n[ota]\\nallow_downgrade = true\\n' >>/data/pinhole/config.toml && systemctl restart pinholed")
    dev.cookie = None
    dev.wait_api()
    versions = {bundle_version(b): b for b in (a.good, a.next) if b}
    for p in points:
        ver = dev.status().get("version")
        b = next((b for v, b in versions.items() if v != ver), None)
        if b is None:
            skip(f"power cut {p}", f"no bundle other than {ver}")
            continue
        power_cut(dev, rng, p, b, marker)


if __name__ == "__main__":
    sys.exit(main())
