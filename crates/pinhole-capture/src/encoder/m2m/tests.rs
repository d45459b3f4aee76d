use super::fake::FakeM2m;
use super::*;
use crate::encoder::nal_types;

fn settings(w: u32, h: u32) -> EncoderSettings {
    EncoderSettings {
        width: w,
        height: h,
        fps: 30,
        bitrate: 2_000_000,
        keyframe_interval: 4,
        profile: Profile::ConstrainedBaseline,
    }
}

fn i420(w: usize, h: usize, seed: u8) -> Vec<u8> {
    (0..w * h * 3 / 2)
        .map(|i| (i as u8).wrapping_add(seed))
        .collect()
}

#[test]
fn setup_sets_every_parameter_explicitly() {
    let enc = M2mEncoder::open(
        FakeM2m::new(),
        "/dev/video11",
        settings(1280, 720),
        RawFormat::I420,
    )
    .expect("open");
    let d = enc.device();
    assert_eq!(d.ctrls[&CID_MPEG_VIDEO_BITRATE], 2_000_000);
    assert_eq!(d.ctrls[&CID_MPEG_VIDEO_H264_I_PERIOD], 4);
    assert_eq!(
        d.ctrls[&CID_MPEG_VIDEO_H264_PROFILE],
        H264_PROFILE_CONSTRAINED_BASELINE
    );
    assert_eq!(
        d.ctrls[&CID_MPEG_VIDEO_H264_LEVEL], 9,
        "1280x720@30 → level 3.1"
    );
    assert_eq!(d.ctrls[&CID_MPEG_VIDEO_REPEAT_SEQ_HEADER], 1);
    // Coded format first, then the raw one, then buffers, then streaming.
    let order: Vec<&str> = d
        .log
        .iter()
        .map(String::as_str)
        .filter(|l| l.starts_with("s_fmt") || l.starts_with("reqbufs") || l.starts_with("streamon"))
        .collect();
    assert_eq!(
        order,
        [
            "s_fmt 9 1280x720 H264",
            "s_fmt 10 1280x720 YU12",
            "reqbufs 10 4",
            "reqbufs 9 4",
            "streamon 10",
            "streamon 9"
        ]
    );
}

#[test]
fn encodes_with_keyframe_interval_and_on_request() {
    let mut enc =
        M2mEncoder::open(FakeM2m::new(), "fake", settings(64, 48), RawFormat::I420).expect("open");
    let pic = i420(64, 48, 0);
    let mut keys = Vec::new();
    for n in 0..12u64 {
        if n == 6 {
            enc.request_keyframe();
        }
        let out = enc
            .encode(&RawFrame::packed(RawFormat::I420, 64, 48, &pic), n * 1000)
            .expect("encode");
        assert_eq!(out.len(), 1, "one picture in, one out");
        assert_eq!(out[0].pts_us, n * 1000, "timestamps come back");
        if out[0].keyframe {
            keys.push(n);
        }
    }
    assert_eq!(keys, vec![0, 4, 6, 10]);
}

#[test]
fn parameter_sets_repaired_when_repeat_header_is_refused() {
    let mut fake = FakeM2m::new();
    fake.unsupported.push(CID_MPEG_VIDEO_REPEAT_SEQ_HEADER);
    let mut enc = M2mEncoder::open(fake, "fake", settings(64, 48), RawFormat::I420).expect("open");
    let pic = i420(64, 48, 0);
    for n in 0..9u64 {
        for e in enc
            .encode(&RawFrame::packed(RawFormat::I420, 64, 48, &pic), n)
            .expect("encode")
        {
            if e.keyframe {
                let t: Vec<u8> = nal_types(&e.data).collect();
                assert_eq!(t, vec![7, 8, 5], "frame {n}");
            }
        }
    }
}

#[test]
fn frames_are_copied_into_the_drivers_padded_layout() {
    let mut enc =
        M2mEncoder::open(FakeM2m::new(), "fake", settings(40, 20), RawFormat::I420).expect("open");
    // Driver: stride 64 (aligned to 32), 32 luma rows (aligned to 16).
    let pic = i420(40, 20, 7);
    enc.encode(&RawFrame::packed(RawFormat::I420, 40, 20, &pic), 0)
        .expect("encode");
    let seen = &enc.device().inputs[0];
    assert_eq!(seen.len(), 64 * 32 * 3 / 2);
    assert_eq!(&seen[64..104], &pic[40..80], "luma row 1");
    let (u_dst, u_src) = (64 * 32, 40 * 20);
    assert_eq!(&seen[u_dst..u_dst + 20], &pic[u_src..u_src + 20], "U row 0");
    let (v_dst, v_src) = (u_dst + 32 * 16, u_src + 20 * 10);
    assert_eq!(
        &seen[v_dst + 32..v_dst + 52],
        &pic[v_src + 20..v_src + 40],
        "V row 1"
    );
}

#[test]
fn drain_returns_pending_output_and_resumes() {
    let mut fake = FakeM2m::new();
    fake.hang = true; // hold pictures back so the drain has something to flush
    let mut enc = M2mEncoder::open(fake, "fake", settings(64, 48), RawFormat::I420).expect("open");
    enc.wait_ms = 0;
    let pic = i420(64, 48, 0);
    for n in 0..3 {
        assert!(enc
            .encode(&RawFrame::packed(RawFormat::I420, 64, 48, &pic), n)
            .expect("queued")
            .is_empty());
    }
    enc.dev.hang = false;
    let flushed = enc.drain().expect("drain");
    assert_eq!(
        flushed.iter().map(|e| e.pts_us).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(enc.device().logged("encoder_cmd 1"), 1);
    assert_eq!(enc.device().logged("encoder_cmd 0"), 1);
    let out = enc
        .encode(&RawFrame::packed(RawFormat::I420, 64, 48, &pic), 3)
        .expect("after drain");
    assert_eq!(out.len(), 1);
}

#[test]
fn a_hung_encoder_is_an_error_not_a_hang() {
    let mut fake = FakeM2m::new();
    fake.hang = true;
    let mut enc = M2mEncoder::open(fake, "fake", settings(64, 48), RawFormat::I420).expect("open");
    let pic = i420(64, 48, 0);
    let mut result = Ok(Vec::new());
    for n in 0..5 {
        result = enc.encode(&RawFrame::packed(RawFormat::I420, 64, 48, &pic), n);
        if result.is_err() {
            break;
        }
    }
    let e = result.unwrap_err().to_string();
    assert!(e.contains("stalled"), "{e}");
    assert!(enc.drain().is_err(), "no LAST buffer from a hung encoder");
}

#[test]
fn bitrate_changes_live_and_resolution_change_reinitialises() {
    let mut enc =
        M2mEncoder::open(FakeM2m::new(), "fake", settings(64, 48), RawFormat::I420).expect("open");
    let pic = i420(64, 48, 0);
    enc.encode(&RawFrame::packed(RawFormat::I420, 64, 48, &pic), 0)
        .expect("encode");
    let mut s = settings(64, 48);
    s.bitrate = 500_000;
    enc.reconfigure(s).expect("bitrate");
    assert_eq!(enc.device().ctrls[&CID_MPEG_VIDEO_BITRATE], 500_000);
    assert_eq!(
        enc.device().logged("streamoff"),
        0,
        "no restart for a bitrate change"
    );

    s.width = 128;
    s.height = 96;
    enc.reconfigure(s).expect("resize");
    let d = enc.device();
    assert_eq!(d.logged("streamoff"), 2);
    assert!(d.log.iter().any(|l| l == "reqbufs 10 0") && d.log.iter().any(|l| l == "reqbufs 9 0"));
    assert!(d.log.iter().any(|l| l == "s_fmt 10 128x96 YU12"));
    assert!(
        enc.encode(&RawFrame::packed(RawFormat::I420, 64, 48, &pic), 1)
            .is_err(),
        "old size refused"
    );
    let big = i420(128, 96, 0);
    let out = enc
        .encode(&RawFrame::packed(RawFormat::I420, 128, 96, &big), 2)
        .expect("new size");
    assert!(out[0].keyframe, "a new stream starts on an IDR");
    assert_eq!(&out[0].data[6..8], &128u16.to_be_bytes(), "new SPS");
}

#[test]
fn capability_classification() {
    let cap = |caps| crate::v4l2::device::Capability {
        driver: String::new(),
        card: String::new(),
        bus_info: String::new(),
        caps,
    };
    // A webcam is capture-only; an M2M codec is never picked as a camera.
    assert!(cap(CAP_VIDEO_CAPTURE | CAP_STREAMING).is_capture());
    assert!(!cap(CAP_VIDEO_CAPTURE | CAP_STREAMING).is_m2m_mplane());
    let codec = cap(CAP_VIDEO_M2M_MPLANE | CAP_VIDEO_CAPTURE_MPLANE | CAP_STREAMING);
    assert!(codec.is_m2m_mplane() && !codec.is_capture());
}
