#!/usr/bin/env python3
"""System test: sound on the booted qemu-arm64 image, from a real ALSA device.

    tests/qemu/audio_test.py IMAGE [--log-dir DIR]

Loads `snd-aloop` (a loopback sound card), plays a 440 Hz tone into its
playback side with `speaker-test`, points pinholed at the capture side
(`[audio] source = "alsa:hw:Loopback,1,0"` in /data/pinhole/config.toml) and
asserts: the audio source runs (/api/status through nginx), /stream.mp4
carries an Opus track beside the H.264 one (ffprobe on the host when it has
one, else the init segment's `Opus` sample entry), the decoded sound is the
tone (not silence); killing arecord (the device gone) leaves the video
running, says why in the status, and the audio comes back.
Needs what boot_test.py needs (python3, qemu-system-aarch64, u-boot-qemu).
"""
import argparse, json, os, shutil, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from boot_test import Guest, boot_report, check, free_port, http_get, results  # noqa: E402

TONE = "speaker-test -D hw:Loopback,0,0 -t sine -f 440 -r 48000 -c 1 -F S16_LE"


def status(port):
    _, _, body = http_get(port, "/api/status")
    return json.loads(body)


def wait_status(port, pred, timeout, every=1.0):
    deadline = time.time() + timeout
    s = None
    while time.time() < deadline:
        try:
            s = status(port)
            if pred(s):
                return s
        except Exception:  # pinholed restarting: nginx answers 502 for a moment
            pass
        time.sleep(every)
    return s


def record(port, secs, path):
    """`secs` of /stream.mp4 through nginx (whole top-level boxes only)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    # The Host check refuses names that are not the camera's (DNS rebinding):
    # the forwarded address, as the other checks use.
    s.sendall(f"GET /stream.mp4 HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    buf, end = b"", time.time() + secs
    s.settimeout(1)
    while time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        buf += chunk
    s.close()
    body = buf.split(b"\r\n\r\n", 1)[-1]
    off = 0
    while off + 8 <= len(body):
        size = int.from_bytes(body[off:off + 4], "big")
        if size < 8 or off + size > len(body):
            break
        off += size
    with open(path, "wb") as f:
        f.write(body[:off])
    return body[:off]


def audio_checks(g, port, check=check):
    """The snd-aloop checks on a booted guest (also run by boot_test.py inside
    its one boot: CI boots once). `check` is the caller's, so its counts add up
    there. Leaves config.toml as it found it (the [audio] lines removed; the
    next pinholed restart drops the source)."""
    tmp = tempfile.mkdtemp(prefix="pinhole-qemu-audio-")
    try:
        _audio_checks(g, port, check, tmp)
    finally:
        # the tone generator would keep a (TCG-emulated) core busy for the rest of the boot
        g.sh("for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = speaker-test ] && kill ${p#/proc/}; done;"
             " c=/data/pinhole/config.toml; if [ -f $c.noaudio ]; then mv $c.noaudio $c;"
             " elif [ -f $c.created ]; then rm -f $c $c.created; fi; true")
        shutil.rmtree(tmp, ignore_errors=True)


def _audio_checks(g, port, check, tmp):
    st, out = g.sh("modprobe snd-aloop && ls /dev/snd")
    check(st == 0 and "pcmC" in out, "snd-aloop loads (module kept in the image)", out)
    g.sh(f"({TONE} >/dev/null 2>&1 &)")
    st, out = g.sh(
        "c=/data/pinhole/config.toml; if [ -e $c ]; then cp -p $c $c.noaudio; else touch $c.created; fi; "
        "grep -qs '^\\[audio\\]' $c || "
        "printf '\\n[audio]\\nsource = \"alsa:hw:Loopback,1,0\"\\n' >>$c; "
        "chown pinhole:pinhole $c; systemctl restart pinholed")
    check(st == 0, "pinholed restarted with [audio] source = alsa:hw:Loopback,1,0", out)
    s = wait_status(port, lambda s: (s.get("audio") or {}).get("state") == "running", 120)
    if not check((s or {}).get("audio", {}).get("state") == "running", "the ALSA audio source runs",
                 json.dumps((s or {}).get("audio"))):
        _, log = g.sh("journalctl -b -u pinholed --no-pager | tail -n 30")
        print("   " + log.replace("\n", "\n   "), flush=True)
    time.sleep(3)  # the audio track joins the stream at the next keyframe
    mp4 = os.path.join(tmp, "av.mp4")
    data = record(port, 6, mp4)
    if shutil.which("ffprobe"):
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                              "-of", "csv=p=0", mp4], capture_output=True, text=True).stdout
        check("h264" in out and "opus" in out, "/stream.mp4 carries H.264 + Opus (ffprobe)", out.strip())
        pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", mp4, "-map", "0:a", "-f", "s16le",
                              "-ac", "1", "-ar", "48000", "-"], capture_output=True).stdout
        peak = max((abs(int.from_bytes(pcm[i:i + 2], "little", signed=True))
                    for i in range(0, len(pcm) - 1, 2)), default=0)
        check(peak > 3000, "the sound is the tone, not silence", f"peak {peak}")
    else:
        check(b"Opus" in data and b"dOps" in data, "/stream.mp4 carries an Opus track (init segment)")
    frames = (status(port) or {}).get("frames", 0)
    # no procps in the image: find arecord by its comm
    g.sh("for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = arecord ] && kill ${p#/proc/}; done; true")
    # The device is retried 0.5 s after the loss (silence meanwhile), so the
    # failed state can be shorter than a status round trip through nginx in
    # TCG: poll fast, and take the journal's record when the poll missed it.
    s = wait_status(port, lambda s: (s.get("audio") or {}).get("state") == "failed", 30, every=0.1)
    why = ((s or {}).get("audio") or {}).get("error") or ""
    if "ALSA device hw:Loopback,1,0: " not in why:
        _, log = g.sh("journalctl -b -u pinholed --no-pager -o verbose | grep -m1 'ALSA device hw:Loopback,1,0: '")
        why = f"(from the journal) {log.strip()}"
    check("ALSA device hw:Loopback,1,0: " in why, "a lost device: the status (or the journal) says why", why)
    s = wait_status(port, lambda s: (s.get("audio") or {}).get("state") == "running", 60)
    check((s or {}).get("audio", {}).get("state") == "running", "the audio comes back")
    check((s or {}).get("frames", 0) > frames and (s or {}).get("source", {}).get("state") == "running",
          "the video went on meanwhile")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--log-dir", default=None)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pinhole-qemu-audio-")
    logdir = a.log_dir or tmp
    os.makedirs(logdir, exist_ok=True)
    disk = os.path.join(tmp, "disk.img")
    subprocess.run(["cp", "--sparse=always", a.image, disk], check=True)
    port = free_port()
    g = Guest(disk, port, os.path.join(logdir, "console.log"))
    try:
        r = boot_report(g)
        check(r["state"] == "running", "system running", str(r))
        audio_checks(g, port)
    except Exception as e:
        check(False, "test ran to the end", f"{type(e).__name__}: {e}")
    finally:
        g.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{results['passed']} passed, {results['failed']} failed, {results['skipped']} skipped")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
