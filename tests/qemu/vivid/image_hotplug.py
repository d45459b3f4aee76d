#!/usr/bin/env python3
"""Camera hotplug in the real image, through nginx and systemd's sandbox.

    tests/qemu/vivid/image_hotplug.py IMAGE [PINHOLED]

Boots the qemu-arm64 IMAGE (as tests/qemu/boot_test.py does), sets
`source = "auto"` in /data/pinhole/config.toml and reboots, so the image's
own pinholed starts at boot with no camera, after the image's
modules-load.d has loaded `videodev` (asserted: loaded, by
systemd-modules-load, with no manual modprobe). Then only `modprobe vivid`.
Asserts through nginx: /api/status says the test pattern and why; the same
daemon (same PID, no systemd restart) switches to vivid, i.e. the service's
device ACL accepts it; a WebSocket viewer on /ws/h264 receives H.264 from
it; /api/camera lists vivid's controls. Last, why the boot-time videodev is
needed: with videodev unloaded when the service starts, vivid is refused
(EPERM) and the status says so. Prints 'N passed, N failed' (7 checks).

PINHOLED (optional): another static aarch64 pinholed, sent over the guest's
user-mode network to /data and bind-mounted over /usr/bin/pinholed after
the reboot (then started by a service restart: same boot-loaded videodev),
so an image built from an older commit can test a new daemon (8 checks).
"""
import json, os, socket, sys, tempfile, threading, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from boot_test import Guest, check, free_port, http_get, nal_types, results, ws_frames  # noqa: E402


def status(port):
    return json.loads(http_get(port, "/api/status")[2])


def wait_status(port, pred, timeout):
    end, last = time.monotonic() + timeout, None
    while time.monotonic() < end:
        try:
            last = status(port)
            if pred(last):
                return last
        except Exception as e:  # nginx up before pinholed, a restart in progress
            last = {"error": str(e)}
        time.sleep(1)
    return last


def serve_once(path):
    """A TCP port on the host that sends one file to the first connection."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run():
        c, _ = srv.accept()
        with open(path, "rb") as f:
            c.sendall(f.read())
        c.close()
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1]


def main():
    image = sys.argv[1]
    binary = sys.argv[2] if len(sys.argv) > 2 else None
    tmp = tempfile.mkdtemp(prefix="pinhole-hotplug-")
    disk = os.path.join(tmp, "disk.img")
    os.system(f"cp --sparse=always '{image}' '{disk}'")
    port = free_port()
    log = os.environ.get("HOTPLUG_LOG", os.path.join(tmp, "console.log"))
    print(f"image {image}, console log {log}", flush=True)
    g = Guest(disk, port, log)
    try:
        g.login(600)
        g.sh("timeout 300 systemctl is-system-running --wait", 320)
        # `source` is a top-level key: it goes before the first [section].
        # /data keeps it across the reboot below.
        g.sh("f=/data/pinhole/config.toml;"
             " { echo 'source = \"auto\"'; grep -v '^source *=' $f 2>/dev/null; } > /run/c.toml"
             " && cat /run/c.toml > $f && sync", 60)
        # The as-shipped path: pinholed starts at boot with `source = "auto"`,
        # after systemd-modules-load. (A PINHOLED under test is bind-mounted
        # after the reboot and started by a service restart: its device ACL
        # is resolved then, from the same boot-loaded videodev.)
        start = g.mark()
        g.send("systemctl reboot")
        g.login(600, start)
        g.sh("timeout 300 systemctl is-system-running --wait", 320)
        # Nothing in this boot ran modprobe, and the virt machine has no
        # V4L2 hardware: videodev is there because modules-load.d names it
        # and systemd-modules-load ran without failing.
        st, out = g.sh("test -d /sys/module/videodev && ! test -d /sys/module/vivid"
                       " && grep -x videodev /etc/modules-load.d/pinhole-v4l2.conf"
                       " && systemctl show -p Result --value systemd-modules-load")
        check(st == 0 and out.split() == ["videodev", "success"],
              "after boot videodev is loaded by modules-load.d (no manual modprobe), no camera yet",
              out.replace("\n", "; ")[:200])
        if binary:
            p = serve_once(binary)
            st, out = g.sh(f"cat < /dev/tcp/10.0.2.2/{p} > /data/pinholed.test && chmod 755 /data/pinholed.test"
                           f" && mount --bind /data/pinholed.test /usr/bin/pinholed && stat -c %s /usr/bin/pinholed"
                           f" && systemctl restart pinholed", 180)
            check(st == 0 and str(os.path.getsize(binary)) in out,
                  "the pinholed under test is in place", out.splitlines()[-1] if out else "")
        s = wait_status(port, lambda s: s.get("source", {}).get("state") == "running", 120)
        src = s.get("source", {})
        check(src.get("kind") == "test" and "auto: no camera" in src.get("detail", ""),
              "auto with no camera: the test pattern, and why (through nginx)", src.get("detail", str(s))[:300])
        _, pid0 = g.sh("systemctl show -p MainPID,NRestarts --value pinholed | paste -sd' '")
        t0 = time.monotonic()
        # Only the camera's driver: videodev is already there from boot.
        st, out = g.sh("modprobe vivid node_types=0x1 && ls /dev/video*")
        check(st == 0, "modprobe vivid", out)
        s = wait_status(port, lambda s: s.get("source", {}).get("kind") == "v4l2"
                        and s["source"].get("state") == "running", 60)
        src = s.get("source", {})
        took = time.monotonic() - t0
        _, pid1 = g.sh("systemctl show -p MainPID,NRestarts --value pinholed | paste -sd' '")
        check(src.get("kind") == "v4l2" and pid1 == pid0,
              f"the running daemon switched to vivid in {took:.1f} s (same PID and restart count)",
              f"{pid0} -> {pid1}; {src.get('detail', s)}"[:400])
        try:
            frames = ws_frames(port, "/ws/h264", 10, timeout=30)
            types = sorted({t for f in frames for t in nal_types(f)})
            check(7 in types and any(t in (1, 5) for t in types),
                  "a /ws/h264 viewer through nginx receives H.264 from vivid",
                  f"{len(frames)} messages, {sum(map(len, frames))} bytes, NAL types {types}")
        except Exception as e:
            check(False, "a /ws/h264 viewer through nginx receives H.264 from vivid", f"{type(e).__name__}: {e}")
        cam = json.loads(http_get(port, "/api/camera")[2])
        keys = [c["key"] for c in cam.get("controls", [])]
        check("brightness" in keys, "/api/camera lists vivid's controls (through nginx)", " ".join(keys))
        _, journal = g.sh("journalctl -b -u pinholed --no-pager -o cat | grep -E 'auto|v4l2' | tail -n 6 | cut -c1-200")
        print("   " + journal.replace("\n", "\n   "), flush=True)
        # Why modules-load.d is needed (and that the checks above are not
        # vacuous): without videodev when the service starts, its device
        # ACL has no video4linux entry, a camera plugged in later is
        # refused, and the status must say so.
        # The daemon holds vivid open: stop it before unloading the modules.
        # vivid's helpers (videobuf2_*, v4l2_*) hold videodev and each other:
        # unload the unused ones round by round. pinholed is started again
        # whatever happened.
        # (A subshell: `exit` must not end the guest's login shell.)
        st, out = g.sh("(systemctl stop pinholed; modprobe -r vivid;"
                       " for i in 1 2 3 4 5; do for m in $(lsmod | awk 'NR>1 && $3==0 && $1 ~ /^(vivid|videobuf2|v4l2)/ {print $1}');"
                       " do rmmod $m; done; done;"
                       " modprobe -r videodev; ! test -d /sys/module/videodev; r=$?;"
                       " lsmod | grep -E '^(videodev|videobuf2|v4l2|mc) ' | tr '\\n' ' ';"
                       " systemctl start pinholed; exit $r)", 180)
        if st != 0:
            print("   could not unload videodev: " + out.replace("\n", "; ")[:300], flush=True)
        wait_status(port, lambda s: s.get("source", {}).get("state") == "running"
                    and s["source"].get("kind") == "test", 120)
        g.sh("modprobe vivid node_types=0x1")
        # The node appears before udev gives it to group video: the first
        # scans may see EACCES (owner root, mode 0600); wait for the device
        # policy's EPERM, which is what stays.
        s = wait_status(port, lambda s: "not permitted" in s.get("source", {}).get("detail", ""), 30)
        src = s.get("source", {})
        check(src.get("kind") == "test" and "/dev/video0" in src.get("detail", "")
              and "not permitted" in src.get("detail", ""),
              "without videodev at service start: vivid is refused, the status says why",
              src.get("detail", str(s))[:300])
    except Exception as e:
        check(False, "test ran to the end", f"{type(e).__name__}: {e}")
        with g.lock:
            print("---- console tail ----\n" + g.buf[-3000:] + "\n----", flush=True)
    finally:
        g.stop()
    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
