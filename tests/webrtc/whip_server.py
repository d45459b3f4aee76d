#!/usr/bin/env python3
"""A WHIP endpoint (RFC 9725) on aiortc, a WebRTC stack that is not ours,
for pinhole's push tests. Takes one publisher at a time on POST /whip,
decodes everything it receives and prints one JSON line per half second:

  {"sessions": 1, "deletes": 0, "video": 95, "width": 320, "height": 240,
   "audio": 40, "state": "connected", "auth_refused": 0, "plis": 0}

  whip_server.py --port P [--token T]

--token T  requires `Authorization: Bearer T` (else 401).

POST /pli makes aiortc send an RTCP PLI (picture loss) for every video
source it receives, as a receiver does after losing a picture: the
publisher is to ask its camera for a keyframe.

The HTTP side is a few lines of asyncio: what is under test is the WebRTC
exchange (offer/answer, ICE with us controlling, DTLS/SRTP, RTP decoding).
Only loopback is used: aioice is told to gather 127.0.0.1 alone.
"""
import argparse
import asyncio
import json
import sys
import uuid

import aioice.ice

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.mediastreams import MediaStreamError  # noqa: E402

stats = {"sessions": 0, "deletes": 0, "video": 0, "width": 0, "height": 0,
         "audio": 0, "state": "none", "auth_refused": 0, "plis": 0}
pcs = {}


async def consume(track):
    try:
        while True:
            frame = await track.recv()
            if track.kind == "video":
                stats["video"] += 1
                stats["width"], stats["height"] = frame.width, frame.height
            else:
                stats["audio"] += 1
    except MediaStreamError:
        pass


async def answer(offer_sdp):
    pc = RTCPeerConnection()
    sid = uuid.uuid4().hex

    @pc.on("track")
    def on_track(track):
        asyncio.ensure_future(consume(track))

    @pc.on("connectionstatechange")
    async def on_state():
        stats["state"] = pc.connectionState
        if pc.connectionState in ("failed", "closed"):
            await pc.close()
            pcs.pop(sid, None)

    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    pcs[sid] = pc
    stats["sessions"] += 1
    return sid, pc.localDescription.sdp


async def send_plis():
    n = 0
    for pc in list(pcs.values()):
        for r in pc.getReceivers():
            if r.track is None or r.track.kind != "video":
                continue
            for src in r.getSynchronizationSources():
                # aiortc's own PLI path (what its jitter buffer uses on loss).
                await r._send_rtcp_pli(src.source)
                n += 1
    stats["plis"] += n
    return n


async def handle(reader, writer, token):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))

        def reply(status, text=b"", extra=()):
            out = [f"HTTP/1.1 {status}", f"Content-Length: {len(text)}", "Connection: close"]
            out += list(extra)
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + text)

        if token and headers.get("authorization") != f"Bearer {token}":
            stats["auth_refused"] += 1
            reply("401 Unauthorized", b"bad token\n")
        elif method == "POST" and path == "/whip":
            if headers.get("content-type") != "application/sdp":
                reply("415 Unsupported Media Type")
            else:
                sid, sdp = await answer(body.decode())
                reply("201 Created", sdp.encode(),
                      ["Content-Type: application/sdp", f"Location: /whip/{sid}"])
        elif method == "POST" and path == "/pli":
            n = await send_plis()
            reply("200 OK", f"{n}\n".encode())
        elif method == "DELETE" and path.startswith("/whip/"):
            pc = pcs.pop(path[len("/whip/"):], None)
            if pc is None:
                reply("404 Not Found")
            else:
                stats["deletes"] += 1
                await pc.close()
                reply("200 OK")
        else:
            reply("405 Method Not Allowed")
        await writer.drain()
    except asyncio.IncompleteReadError:
        pass  # a connection closed without a request (the test's probe)
    except Exception as e:  # a test server: say what broke, keep serving
        print(f"whip_server: {e!r}", file=sys.stderr)
    finally:
        writer.close()


async def report():
    while True:
        print(json.dumps(stats), flush=True)
        await asyncio.sleep(0.5)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token")
    a = ap.parse_args()
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, a.token), "127.0.0.1", a.port)
    asyncio.ensure_future(report())
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
