//! ONVIF's network input: bytes → the SOAP request parser → the access
//! class, the token checks and the answer (or fault) built from it; and the
//! same bytes as a WS-Discovery datagram → Probe → ProbeMatch. Nothing may
//! panic, and every answer must be XML a strict reader accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinhole_onvif::discovery::{self, Announce, Sequence};
use pinhole_onvif::service::{self, Context, DeviceInfo, StreamInfo};
use pinhole_onvif::wsse;

fn well_formed(s: &str) {
    let mut r = quick_xml::Reader::from_str(s);
    loop {
        match r.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("our answer is not XML: {e}\n{s}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = pinhole_onvif::parse(data) {
        let device = DeviceInfo {
            manufacturer: "pinhole".into(),
            model: "m".into(),
            firmware: "0".into(),
            serial: "s".into(),
            hardware: "h".into(),
        };
        let cx = Context {
            device: &device,
            stream: StreamInfo::default(),
            device_xaddr: "http://h/onvif/device_service",
            media_xaddr: "http://h/onvif/media_service",
            rtsp_uri: "rtsp://h:8554/stream",
            snapshot_uri: "http://h/snapshot.jpg",
            now_us: 1_796_655_600_000_000,
        };
        let _ = service::access(&req);
        match service::respond(&req, &cx) {
            Ok(body) => well_formed(&body),
            Err(f) => well_formed(&f.envelope(req.soap11)),
        }
        if let Some(t) = &req.token {
            let mut nonces = wsse::NonceCache::default();
            let _ = wsse::check_digest(t, "viewer", "pw", cx.now_us, &mut nonces);
            if let Some(c) = &t.created {
                let _ = wsse::parse_time(c);
            }
        }
    } else if let Err(e) = pinhole_onvif::parse(data) {
        well_formed(&e.fault().envelope(false));
    }
    if let Ok(Some(probe)) = discovery::parse_probe(data) {
        let xaddrs = vec!["http://10.0.0.2/onvif/device_service".to_string()];
        let a = Announce {
            endpoint: "urn:uuid:00000000-0000-4000-8000-000000000000",
            xaddrs: &xaddrs,
            name: "n",
            hardware: "h",
        };
        if a.matches(&probe) {
            well_formed(&a.probe_match(&probe, "urn:uuid:x", Sequence { instance: 1, number: 1 }));
        }
    }
});
