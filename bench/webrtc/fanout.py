#!/usr/bin/env python3
"""WebRTC fan-out load client (bench/webrtc-fanout.sh): N WHEP sessions on
aiortc (a WebRTC stack that is not ours: ICE, DTLS, SRTP keys), spread over
worker processes of 25. Python cannot decrypt 100 × 3 Mbit/s on a shared
core, so per worker one *probe* session takes every packet through aiortc's
SRTP and reads the timestamp SEI (delay), while the others are *sinks*:
once connected, their RTP is counted from the clear RTP header (sequence
gaps, marker bits) in the socket callback and dropped undecrypted; their
STUN (consent) and RTCP still go through aiortc. The server does the same
work for every session (encrypts, sends).

  fanout.py run --url http://127.0.0.1:PORT --sessions N --server-pid PID
  fanout.py worker ...   (started by `run`)

`run` prints one JSON line: per-session frames and packets, sequence gaps
(lost), client-measured delay (the timestamp SEI the bench server puts in
every frame: publish wallclock -> the frame's last packet here), the
server's CPU and RSS over the window (/proc), its own counters from
/api/status (datagrams sent, send errors, server-added delay histogram:
frame published -> handed to the socket) and the kernel's UDP receive-buffer
drops on this machine (the client's: everything is on loopback).
"""
import argparse
import asyncio
import json
import math
import os
import resource
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urljoin

import aioice.ice

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

_datagram_received = aioice.ice.StunProtocol.datagram_received


def datagram_received(self, data, addr):
    s = getattr(self, "sink", None)
    # RTP (RFC 7983: first byte 128-191; RTCP has payload types 192-223).
    if s is not None and len(data) >= 12 and 128 <= data[0] <= 191 and not 192 <= data[1] <= 223:
        ssrc = data[8:12]
        if s.ssrc is None:
            s.ssrc = ssrc
        if ssrc != s.ssrc:
            return
        seq = int.from_bytes(data[2:4], "big")
        now = time.time()
        inside = T0 <= now < T1
        if s.last_seq is not None:
            gap = (seq - s.last_seq) & 0xFFFF
            if 1 < gap < 3000 and inside:
                s.lost += gap - 1
            if gap == 0 or gap >= 3000:
                return
        s.last_seq = seq
        if inside:
            s.packets += 1
            s.bytes += len(data)
            s.frames += data[1] >> 7
        return
    _datagram_received(self, data, addr)


aioice.ice.StunProtocol.datagram_received = datagram_received

from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.rtcrtpreceiver import RTCRtpReceiver  # noqa: E402

SEI_UUID_LEN = 16
T0 = T1 = 0.0
STATS = {}  # id(receiver) -> Session (probes)
SINKS = []


class Session:
    def __init__(self, probe=True):
        self.probe = probe
        self.packets = self.bytes = self.frames = self.lost = 0
        self.ssrc = None
        self.last_seq = None
        self.stamps = {}  # RTP timestamp -> publish wallclock (s)
        self.delays = []  # ms


def stamp_of(nal):
    """The publish wallclock (µs) in pinhole's timestamp SEI, or None."""
    if len(nal) < 27 or nal[0] & 0x1F != 6:
        return None
    raw = nal[1:].replace(b"\x00\x00\x03", b"\x00\x00")
    if raw[0] != 5 or raw[1] != 24:
        return None
    return int.from_bytes(raw[2 + SEI_UUID_LEN : 2 + SEI_UUID_LEN + 8], "big")


def find_stamp(payload):
    t = payload[0] & 0x1F
    if t == 6:
        return stamp_of(payload)
    if t == 24:  # STAP-A: 16-bit sizes, then the NALs
        i = 1
        while i + 2 <= len(payload):
            n = int.from_bytes(payload[i : i + 2], "big")
            s = stamp_of(payload[i + 2 : i + 2 + n])
            if s is not None:
                return s
            i += 2 + n
    return None


async def counting_handler(self, packet, arrival_time_ms):
    s = STATS.get(id(self))
    if s is None:
        return
    if s.ssrc is None:
        s.ssrc = packet.ssrc
    if packet.ssrc != s.ssrc:
        return  # RTX or another stream: not counted
    now = time.time()
    inside = T0 <= now < T1
    if s.last_seq is not None:
        gap = (packet.sequence_number - s.last_seq) & 0xFFFF
        if 1 < gap < 3000 and inside:
            s.lost += gap - 1
        if gap == 0 or gap >= 3000:
            return  # duplicate or late
    s.last_seq = packet.sequence_number
    stamp = find_stamp(packet.payload) if packet.payload else None
    if stamp is not None:
        # The first stamp of a frame is the publish time; the pre-encoded
        # pattern carries an older one of its own behind it.
        s.stamps.setdefault(packet.timestamp, stamp / 1e6)
    if not inside:
        return
    s.packets += 1
    s.bytes += len(packet.payload)
    if packet.marker:
        s.frames += 1
        at = s.stamps.pop(packet.timestamp, None)
        if at is not None:
            s.delays.append((now - at) * 1000)
        if len(s.stamps) > 64:
            s.stamps.clear()


RTCRtpReceiver._handle_rtp_packet = counting_handler


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers.items()), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read().decode()


async def open_session(url, probe):
    pc = RTCPeerConnection()
    tr = pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    status, headers, answer = await asyncio.to_thread(
        http, "POST", url, pc.localDescription.sdp.encode(), {"Content-Type": "application/sdp"}
    )
    if status != 201:
        await pc.close()
        raise RuntimeError(f"POST {status}: {answer[:200]}")
    s = Session(probe)
    STATS[id(tr.receiver)] = s
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    if not probe:
        # Sink: RTP counted and dropped in the socket callback (see above).
        for p in tr.receiver.transport.transport._connection._protocols:
            p.sink = s
        STATS.pop(id(tr.receiver))
        SINKS.append(s)
    return pc, urljoin(url, headers.get("Location", ""))


async def worker(a):
    global T0, T1
    T0 = T1 = float("inf")
    pcs, failed = [], 0
    for i in range(a.sessions):
        try:
            pcs.append(await open_session(a.url, probe=i == 0))
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            failed += 1
            print(f"worker: {e}", file=sys.stderr)
    # Every worker's sessions are open: `run` answers with the window's start.
    print("READY", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    T0 = float(line)
    T1 = T0 + a.duration
    await asyncio.sleep(max(0.0, T0 - time.time()))
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(max(0.0, T1 - time.time()))
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / a.duration * 100
    states = [pc.connectionState for pc, _ in pcs]
    for pc, loc in pcs:
        await asyncio.to_thread(http, "DELETE", loc)
        await pc.close()
    out = {
        "failed": failed + sum(s != "connected" for s in states),
        "cpu_pct": cpu,
        "sessions": [
            {"probe": s.probe, "packets": s.packets, "bytes": s.bytes, "frames": s.frames,
             "lost": s.lost, "delays": [round(d, 2) for d in s.delays]}
            for s in list(STATS.values()) + SINKS
        ],
    }
    print(json.dumps(out))


def proc_cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def proc_mem_mib(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return None


def sched_wait_s(pid):
    """Time the server's threads waited for a CPU (runnable, not running)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


def udp_rcvbuf_errors():
    lines = [l.split() for l in open("/proc/net/snmp") if l.startswith("Udp:")]
    return int(lines[1][lines[0].index("RcvbufErrors")])


def webrtc_status(url):
    base = urljoin(url, "/api/status")
    return json.loads(http("GET", base)[2])["webrtc"]


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(math.ceil(q * len(xs))) - 1)]


def bucket_pct(le, counts, q):
    """The bucket a quantile falls in: its upper bound, ms (None past the last)."""
    total = sum(counts)
    if total == 0:
        return None
    acc = 0
    for i, c in enumerate(counts):
        acc += c
        if acc >= q * total:
            return le[i] / 1000 if i < len(le) else None
    return None


def run(a):
    per = a.per_process
    procs = []
    n, left = 0, a.sessions
    while left > 0:
        k = min(per, left)
        procs.append(subprocess.Popen(
            [sys.executable, __file__, "worker", "--url", a.url, "--sessions", str(k),
             "--duration", str(a.duration)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        left -= k
        n += 1
    # Measure once every session is open, and has had the warm-up to settle.
    for p in procs:
        p.stdout.readline()
    t0 = time.time() + a.warmup
    for p in procs:
        p.stdin.write(f"{t0}\n")
        p.stdin.flush()
    time.sleep(max(0.0, t0 - time.time()))
    c0, w0, u0 = proc_cpu_s(a.server_pid), webrtc_status(a.url), udp_rcvbuf_errors()
    s0 = sched_wait_s(a.server_pid)
    time.sleep(a.duration)
    c1, w1, u1 = proc_cpu_s(a.server_pid), webrtc_status(a.url), udp_rcvbuf_errors()
    s1 = sched_wait_s(a.server_pid)
    rss, hwm = proc_mem_mib(a.server_pid, "VmRSS"), proc_mem_mib(a.server_pid, "VmHWM")
    outs = []
    for p in procs:
        out = p.stdout.read()
        p.wait(timeout=120)
        outs.append(json.loads(out.strip().splitlines()[-1]))
    sess = [s for o in outs for s in o["sessions"]]
    delays = [d for s in sess for d in s["delays"]]
    probes = [s for s in sess if s["probe"]]
    le = w1["send_delay_us"]["le"]
    hist = [b - c for b, c in zip(w1["send_delay_us"]["counts"], w0["send_delay_us"]["counts"])]
    frames = [s["frames"] for s in sess] or [0]
    r = {
        "sessions": a.sessions,
        "connected": w0["sessions"],
        "failed": sum(o["failed"] for o in outs),
        "duration_s": a.duration,
        "server_cpu_pct": (c1 - c0) / a.duration * 100,
        "server_wait_ms_per_s": (s1 - s0) / a.duration * 1000,
        "server_rss_mib": rss,
        "server_hwm_mib": hwm,
        "server_packets_sent": w1["packets_sent"] - w0["packets_sent"],
        "server_mbit_per_session": (w1["bytes_sent"] - w0["bytes_sent"]) * 8 / a.duration / 1e6 / max(1, w0["sessions"]),
        "server_send_errors": w1["send_errors"] - w0["send_errors"],
        "server_queue_drops": w1["queue_drops"] - w0["queue_drops"],
        "server_nacks": w1["nacks"] - w0["nacks"],
        "server_delay_p50_ms": bucket_pct(le, hist, 0.5),
        "server_delay_p99_ms": bucket_pct(le, hist, 0.99),
        "client_packets": sum(s["packets"] for s in sess),
        "probe_sessions": len(probes),
        "probe_lost": sum(s["lost"] for s in probes),
        "client_lost": sum(s["lost"] for s in sess),
        "client_udp_rcvbuf_drops": u1 - u0,
        "client_cpu_pct": sum(o["cpu_pct"] for o in outs),
        "client_processes": n,
        "frames_min": min(frames),
        "frames_max": max(frames),
        "client_p50_ms": pct(delays, 0.5),
        "client_p99_ms": pct(delays, 0.99),
        "client_max_ms": max(delays) if delays else None,
    }
    print(json.dumps(r))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--url", required=True, help="the WHEP URL, e.g. http://127.0.0.1:PORT/whep")
    r.add_argument("--sessions", type=int, required=True)
    r.add_argument("--server-pid", type=int, required=True)
    r.add_argument("--per-process", type=int, default=25)
    r.add_argument("--warmup", type=float, default=5)
    r.add_argument("--duration", type=float, default=20)
    w = sub.add_parser("worker")
    w.add_argument("--url", required=True)
    w.add_argument("--sessions", type=int, required=True)
    w.add_argument("--duration", type=float, required=True)
    a = p.parse_args()
    if a.cmd == "run":
        run(a)
    else:
        asyncio.run(worker(a))


if __name__ == "__main__":
    main()
