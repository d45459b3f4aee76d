#!/usr/bin/env python3
"""A WHEP client on aiortc (a WebRTC stack that is not ours), for pinhole's
tests. Plays a WHEP URL for some seconds, decodes every frame and prints one
JSON line: frames decoded, fps, size, longest gap between frames.

  whep_client.py URL [--seconds 10] [--mainsail] [--loss 0.05] [--header K:V]

--mainsail  Mainsail/Fluidd's `webrtc-mediamtx` sequence: OPTIONS (ICE
            servers from Link), an offer with video and audio `sendrecv`,
            POST, the session id from Location (last path segment), PATCH
            URL/<id> with If-Match and their candidate fragment, DELETE.
--audio     receive audio too (recvonly); reports frames and seconds decoded
--loss P    put a UDP relay of our own between us and the server that drops
            a fraction P of the RTP/RTCP datagrams both ways (seeded).

Only loopback is used: aioice is told to gather 127.0.0.1 alone.
"""
import argparse
import asyncio
import json
import random
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urljoin

import aioice.ice

# Loopback only: never offer (or send from) this machine's other addresses.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()


class Relay(asyncio.DatagramProtocol):
    """client <-> relay <-> server, dropping `loss` of the datagrams."""

    def __init__(self, server, loss, seed=7, delay=0.0):
        self.server, self.loss, self.delay = server, loss, delay
        self.rng = random.Random(seed)
        self.client = None
        self.passed = self.dropped = 0

    def connection_made(self, transport):
        self.t = transport

    def datagram_received(self, data, addr):
        if addr == self.server:
            dest = self.client
        else:
            self.client = addr
            dest = self.server
        if dest is None:
            return
        # Media only (RTP/RTCP, first byte 128-191, RFC 7983): the test is
        # about recovering video; lost handshake flights only add DTLS
        # back-off seconds before the first frame.
        if 128 <= data[0] <= 191 and self.rng.random() < self.loss:
            self.dropped += 1
            return
        self.passed += 1
        if self.delay > 0:
            asyncio.get_running_loop().call_later(self.delay, self.t.sendto, data, dest)
        else:
            self.t.sendto(data, dest)


def fragment(offer_sdp, candidates):
    """Mainsail's generateSdpFragment: its ufrag/pwd, then per m-line its mid
    and candidates."""
    ufrag = pwd = None
    medias = []
    for line in offer_sdp.split("\r\n"):
        if line.startswith("m="):
            medias.append(line[2:])
        elif ufrag is None and line.startswith("a=ice-ufrag:"):
            ufrag = line[len("a=ice-ufrag:"):]
        elif pwd is None and line.startswith("a=ice-pwd:"):
            pwd = line[len("a=ice-pwd:"):]
    frag = f"a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n"
    for mid, media in enumerate(medias):
        frag += f"m={media}\r\na=mid:{mid}\r\n"
        for c in candidates:
            frag += f"a={c}\r\n"
    return frag


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--mainsail", action="store_true")
    ap.add_argument("--loss", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay in the relay")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--audio", action="store_true", help="receive audio too (recvonly)")
    a = ap.parse_args()
    extra = dict(h.split(":", 1) for h in a.header)
    out = {"steps": []}

    if a.mainsail:
        st, hd, _ = await asyncio.to_thread(http, "OPTIONS", a.url, None, extra)
        out["steps"].append(["OPTIONS", st])
        out["link"] = hd.get("link")

    pc = RTCPeerConnection()
    direction = "sendrecv" if a.mainsail else "recvonly"
    pc.addTransceiver("video", direction=direction)
    if a.mainsail or a.audio:
        pc.addTransceiver("audio", direction=direction)

    frames = []
    size = {}
    audio = {"frames": 0, "samples": 0, "rate": None, "first": None}
    done = asyncio.Event()

    @pc.on("track")
    def on_track(track):
        if track.kind == "audio":
            async def pull_audio():
                while True:
                    try:
                        f = await track.recv()
                    except Exception:
                        return
                    if audio["first"] is None:
                        audio["first"] = time.monotonic()
                    audio["frames"] += 1
                    audio["samples"] += f.samples
                    audio["rate"] = f.sample_rate

            asyncio.ensure_future(pull_audio())
            return
        if track.kind != "video":
            return

        async def pull():
            while True:
                try:
                    f = await track.recv()
                except Exception:
                    return
                frames.append(time.monotonic())
                size["w"], size["h"] = f.width, f.height

        asyncio.ensure_future(pull())

    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    st, hd, answer = await asyncio.to_thread(
        http, "POST", a.url, offer.encode(), {"Content-Type": "application/sdp", **extra}
    )
    out["steps"].append(["POST", st])
    if st != 201:
        out["error"] = answer
        print(json.dumps(out))
        await pc.close()
        return 1
    location = hd.get("location", "")
    out["location"] = location
    out["etag"] = hd.get("etag")
    session_id = location[location.rfind("/") + 1:]
    if a.mainsail:
        # Mainsail keeps only the id (reverse-proxy prefixes) and appends it.
        resource = a.url + "/" + session_id
    else:
        resource = urljoin(a.url, location)

    relay = None
    if a.loss > 0 or a.delay_ms > 0:
        # Point the answer's candidates at the relay.
        import re
        m = re.search(r"a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host", answer)
        server = (m.group(1), int(m.group(2)))
        loop = asyncio.get_running_loop()
        _, relay = await loop.create_datagram_endpoint(
            lambda: Relay(server, a.loss, a.seed, a.delay_ms / 1000), local_addr=("127.0.0.1", 0)
        )
        rport = relay.t.get_extra_info("sockname")[1]
        answer = answer.replace(f" {server[0]} {server[1]} typ host", f" 127.0.0.1 {rport} typ host")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    if a.mainsail:
        cands = [l[2:] for l in offer.split("\r\n") if l.startswith("a=candidate:")]
        st, _, body = await asyncio.to_thread(
            http, "PATCH", resource, fragment(offer, cands).encode(),
            {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": out["etag"] or "*", **extra},
        )
        out["steps"].append(["PATCH", st])

    t0 = time.monotonic()
    await asyncio.sleep(a.seconds)
    t1 = time.monotonic()
    st, _, _ = await asyncio.to_thread(http, "DELETE", resource, None, extra)
    out["steps"].append(["DELETE", st])
    st, _, _ = await asyncio.to_thread(http, "DELETE", resource, None, extra)
    out["steps"].append(["DELETE again", st])
    await pc.close()

    first = frames[0] if frames else None
    # fps over the time after the first frame (ICE/DTLS set-up excluded).
    span = (t1 - first) if first else 0
    gaps = [b - a_ for a_, b in zip(frames, frames[1:])]
    out.update(
        frames=len(frames),
        fps=round((len(frames) - 1) / span, 2) if span > 0 and len(frames) > 1 else 0,
        first_frame_s=round(first - t0, 3) if first else None,
        max_gap_ms=round(max(gaps) * 1000) if gaps else None,
        # The three longest gaps: [ms, s after the first frame].
        top_gaps=sorted(
            ([round(g * 1000), round(frames[i] - first, 2)] for i, g in enumerate(gaps)),
            reverse=True,
        )[:3],
        width=size.get("w"),
        height=size.get("h"),
    )
    if a.audio:
        out["audio"] = {
            "frames": audio["frames"],
            "rate": audio["rate"],
            # Seconds of sound decoded (aiortc returns only what arrived)
            # and when it began.
            "seconds": round(audio["samples"] / audio["rate"], 2) if audio["rate"] else 0,
            "first_s": round(audio["first"] - t0, 3) if audio["first"] else None,
        }
    if relay:
        out["relay"] = {"passed": relay.passed, "dropped": relay.dropped}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
