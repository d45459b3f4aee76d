#!/usr/bin/env python3
"""What Home Assistant's ONVIF integration does, with its own libraries
(onvif-zeep-async, WSDiscovery), against a real pinholed.

Runs inside tests/onvif/netns.sh (a network namespace of its own, 10.99.0.1
on lo, multicast routed there): it starts pinholed itself on 10.99.0.1,
optionally sets a viewer password through the admin API, then:

  1. WS-Discovery: ThreadedWSDiscovery.searchServices with the scope
     Home Assistant asks for; the host and port come from the XAddrs;
  2. ONVIFCamera(host, port, user, password, wsdl) and update_xaddrs();
     GetSystemDateAndTime; GetNetworkInterfaces (a fault saying "not
     implemented" is what HA accepts); GetDeviceInformation;
  3. media: GetServiceCapabilities (SnapshotUri), GetProfiles (an H264
     one), GetStreamUri, GetSnapshotUri;
  4. ffprobe opens the stream URI with the credentials put in the URL as
     HA does; get_snapshot() fetches the JPEG;
  5. a wrong password and no credentials: refused (is_auth_error).

Prints one JSON line with what it saw; exits non-zero on an exception.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import onvif
from onvif import ONVIFCamera
from onvif.util import is_auth_error
from wsdiscovery.discovery import ThreadedWSDiscovery as WSDiscovery
from wsdiscovery.scope import Scope
from zeep.exceptions import Fault

HOST = "10.99.0.1"
HTTP = 8080
TOKEN = "onviftestviewertoken0123456789"


def http(method, path, body=None, cookie=None):
    req = urllib.request.Request(
        f"http://{HOST}:{HTTP}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Origin": f"http://{HOST}:{HTTP}", "Content-Type": "application/json"},
    )
    if cookie:
        req.add_header("Cookie", cookie)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers, r.read()


def start(pinholed, workdir):
    os.makedirs(workdir, exist_ok=True)
    conf = os.path.join(workdir, "config.toml")
    with open(conf, "w") as f:
        f.write(f'[security]\nviewer_tokens = ["{TOKEN}"]\n')
    log = open(os.path.join(workdir, "pinholed.log"), "w")
    p = subprocess.Popen(
        [pinholed, "--listen", f"{HOST}:{HTTP}", "--rtsp", f"{HOST}:8554",
         "--webrtc-listen", "off", "--config", conf, "--data-dir", os.path.join(workdir, "data"),
         "--width", "320", "--height", "240", "--fps", "15"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "info,pinhole_server::onvif=debug"},
    )
    for _ in range(300):
        try:
            if http("GET", "/api/health")[0] == 200:
                # The stream: RTSP answers 503 until the first keyframe.
                for _ in range(100):
                    s, _, body = http("GET", "/api/status")
                    if json.loads(body).get("stream"):
                        return p
                    time.sleep(0.1)
        except OSError:
            pass
        if p.poll() is not None:
            raise SystemExit(f"pinholed exited: {p.returncode}")
        time.sleep(0.1)
    raise SystemExit("pinholed did not start")


def set_viewer_password(password):
    cookie = None
    for path in ("/api/auth/setup", "/api/auth/login"):
        try:
            _, headers, _ = http("POST", path, {"password": "admin-password-1"})
            cookie = headers["Set-Cookie"].split(";")[0]
            break
        except urllib.error.HTTPError:
            continue
    http("POST", "/api/auth/viewer/password", {"password": password}, cookie)


def discover():
    """Home Assistant's config_flow.wsdiscovery(), then its parsing."""
    wsd = WSDiscovery()
    wsd.start()
    services = wsd.searchServices(scopes=[Scope("onvif://www.onvif.org/Profile/Streaming")], timeout=3)
    wsd.stop()
    found = []
    for s in services:
        url = urllib.parse.urlparse(s.getXAddrs()[0])
        d = {"epr": s.getEPR(), "host": url.hostname, "port": url.port or 80,
             "xaddrs": s.getXAddrs(), "name": None, "hardware": None}
        for scope in s.getScopes():
            v = scope.getValue()
            if v.startswith("onvif://www.onvif.org/name"):
                d["name"] = urllib.parse.unquote(v.split("/")[-1])
            if v.startswith("onvif://www.onvif.org/hardware"):
                d["hardware"] = urllib.parse.unquote(v.split("/")[-1])
        found.append(d)
    return found


def camera(host, port, user, password):
    # homeassistant/components/onvif/device.py get_device()
    return ONVIFCamera(host, port, user, password, f"{os.path.dirname(onvif.__file__)}/wsdl/", no_cache=True)


async def ha(host, port, user, password):
    out = {}
    cam = camera(host, port, user, password)
    try:
        await cam.update_xaddrs()
        mgmt = await cam.create_devicemgmt_service()
        t = await mgmt.GetSystemDateAndTime()
        out["utc"] = [t.UTCDateTime.Date.Year, t.UTCDateTime.Date.Month, t.UTCDateTime.Date.Day]
        try:
            await mgmt.GetNetworkInterfaces()
            out["network_interfaces"] = "answered"
        except Fault as f:
            # config_flow.py: `if "not implemented" not in fault.message: raise`
            if "not implemented" not in f.message:
                raise
            out["network_interfaces"] = "not implemented"
        info = await mgmt.GetDeviceInformation()
        out["info"] = {k: getattr(info, k) for k in ("Manufacturer", "Model", "FirmwareVersion", "SerialNumber", "HardwareId")}
        media = await cam.create_media_service()
        caps = await media.GetServiceCapabilities()
        out["snapshot_capability"] = bool(caps and caps.SnapshotUri)
        profiles = await media.GetProfiles()
        h264 = [p for p in profiles if p.VideoEncoderConfiguration and p.VideoEncoderConfiguration.Encoding == "H264"]
        p = h264[0]
        out["profile"] = {"token": p.token, "name": p.Name,
                          "width": p.VideoEncoderConfiguration.Resolution.Width,
                          "height": p.VideoEncoderConfiguration.Resolution.Height}
        req = media.create_type("GetStreamUri")
        req.ProfileToken = p.token
        req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
        uri = (await media.GetStreamUri(req)).Uri
        out["stream_uri"] = uri
        snap = await media.GetSnapshotUri({"ProfileToken": p.token})
        out["snapshot_uri"] = snap.Uri
        # camera.py: the credentials go into the URL.
        if user:
            uri = uri.replace("rtsp://", f"rtsp://{urllib.parse.quote(user)}:{urllib.parse.quote(password)}@", 1)
        probe = subprocess.run(
            ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries", "stream=codec_name,width,height",
             "-of", "json", uri], capture_output=True, text=True, timeout=30)
        out["ffprobe"] = json.loads(probe.stdout or "{}").get("streams") or probe.stderr.strip()
        jpeg = await cam.get_snapshot(p.token)
        out["snapshot_bytes"] = len(jpeg or b"")
        out["snapshot_jpeg"] = bool(jpeg) and jpeg[:2] == b"\xff\xd8"
    finally:
        await cam.close()
    return out


async def refused(host, port, user, password):
    cam = camera(host, port, user, password)
    try:
        await cam.update_xaddrs()
        mgmt = await cam.create_devicemgmt_service()
        try:
            await mgmt.GetDeviceInformation()
            return {"refused": False}
        except Fault as f:
            return {"refused": True, "auth_error": is_auth_error(f), "message": f.message}
    finally:
        await cam.close()


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--pinholed", required=True)
    a.add_argument("--dir", required=True)
    a.add_argument("--viewer-password")
    args = a.parse_args()
    daemon = start(args.pinholed, args.dir)
    report = {}
    try:
        user = ""
        if args.viewer_password:
            set_viewer_password(args.viewer_password)
            user = "viewer"
        report["discovered"] = discover()
        ours = [d for d in report["discovered"] if d["host"] == HOST]
        host, port = (ours[0]["host"], ours[0]["port"]) if ours else (HOST, HTTP)
        report["ha"] = asyncio.run(ha(host, port, user, args.viewer_password or ""))
        if args.viewer_password:
            report["wrong_password"] = asyncio.run(refused(host, port, "viewer", "not-the-password"))
            report["no_credentials"] = asyncio.run(refused(host, port, "", ""))
    finally:
        daemon.terminate()
        daemon.wait(10)
    with open(os.path.join(args.dir, "pinholed.log")) as f:
        report["log_tail"] = f.read()[-3000:]
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(main())
