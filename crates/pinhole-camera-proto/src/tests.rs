use std::os::fd::AsFd;

use crate::control::{ControlInfo, ControlValue, MAX_CONTROLS};
use crate::fake::{self, FakeOptions};
use crate::msg::*;
use crate::wire::{Channel, Mapping, Ownership};
use crate::ProtoError;

fn layout() -> Layout {
    fake::fake_layout(64, 36)
}

fn every_message() -> Vec<Message> {
    vec![
        Message::Hello {
            version: PROTOCOL_VERSION,
            software: "pinhole-libcamera 0.1.0 (libcamera 0.0.3)".into(),
        },
        Message::ListCameras,
        Message::Cameras(vec![
            CameraDesc {
                id: "/base/soc/i2c0mux/i2c@1/imx708@1a".into(),
                model: "imx708".into(),
            },
            CameraDesc {
                id: "ünïcode".into(),
                model: String::new(),
            },
        ]),
        Message::Cameras(vec![]),
        Message::Start {
            camera: String::new(),
            width: 1280,
            height: 720,
            fps: 30,
        },
        Message::Started {
            camera: CameraDesc {
                id: "a".into(),
                model: "b".into(),
            },
            layout: layout(),
            fps_milli: 29_970,
            buffers: vec![
                BufferDesc {
                    len: layout().frame_len()
                };
                3
            ],
        },
        Message::Frame {
            buffer: 2,
            sequence: u64::MAX,
            pts_us: 123_456_789,
        },
        Message::Release { buffer: 2 },
        Message::Error("camera in use".into()),
        Message::Controls(fake::fake_controls()),
        Message::Controls(vec![]),
        Message::SetControls(vec![
            ("Brightness".into(), ControlValue::Float(-0.25)),
            ("AeEnable".into(), ControlValue::Bool(false)),
            ("ExposureTime".into(), ControlValue::Int(i64::MIN)),
        ]),
        Message::ControlsSet,
        Message::ControlsRefused {
            control: "Brightness".into(),
            reason: "Brightness: 2 is outside -1..=1".into(),
        },
    ]
}

#[test]
fn every_message_round_trips() {
    for m in every_message() {
        let bytes = encode(&m).expect("encode");
        assert_eq!(&bytes[..4], b"PHC1");
        assert_eq!(
            u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize,
            bytes.len() - HEADER_LEN
        );
        assert_eq!(decode(&bytes, m.fd_count()).expect("decode"), m);
    }
}

#[test]
fn header_errors_are_named() {
    let good = encode(&Message::Release { buffer: 1 }).expect("encode");
    assert!(matches!(
        decode(&good[..5], 0),
        Err(ProtoError::ShortHeader(5))
    ));
    let mut bad = good.clone();
    bad[0] = b'X';
    let e = decode(&bad, 0).unwrap_err();
    assert!(e.to_string().contains("bad magic"), "{e}");
    let mut bad = good.clone();
    bad[4] = 99;
    assert!(matches!(decode(&bad, 0), Err(ProtoError::UnknownKind(99))));
    let mut bad = good.clone();
    bad[6] = 1;
    assert!(matches!(decode(&bad, 0), Err(ProtoError::Reserved(1))));
    let mut bad = good.clone();
    bad.push(0);
    let e = decode(&bad, 0).unwrap_err();
    assert!(
        matches!(
            e,
            ProtoError::LengthMismatch {
                header: 2,
                actual: 3
            }
        ),
        "{e}"
    );
    let huge = vec![0u8; MAX_MESSAGE + 1];
    assert!(matches!(decode(&huge, 0), Err(ProtoError::TooLong(..))));
}

/// Rewrites the payload length so only the payload is wrong.
fn with_payload(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = b"PHC1".to_vec();
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

#[test]
fn hostile_payloads_are_clear_errors() {
    // Every strict prefix of every message is "truncated at <field>".
    for m in every_message() {
        let bytes = encode(&m).expect("encode");
        for cut in HEADER_LEN..bytes.len() {
            let e = decode(
                &with_payload(bytes[4].into(), &bytes[HEADER_LEN..cut]),
                m.fd_count(),
            )
            .unwrap_err();
            assert!(
                matches!(e, ProtoError::Truncated { .. }),
                "{} cut at {cut}: {e}",
                m.name()
            );
        }
    }
    // A string claiming 60000 bytes.
    let e = decode(&with_payload(8, &60000u16.to_le_bytes()), 0).unwrap_err();
    assert!(matches!(e, ProtoError::TooLong("text", 60000, _)), "{e}");
    // Invalid UTF-8.
    let e = decode(&with_payload(8, &[2, 0, 0xff, 0xfe]), 0).unwrap_err();
    assert!(matches!(e, ProtoError::NotUtf8("text")), "{e}");
    // A camera list claiming 65535 entries allocates nothing.
    let e = decode(&with_payload(3, &u16::MAX.to_le_bytes()), 0).unwrap_err();
    assert!(matches!(e, ProtoError::TooMany("cameras", 65535, _)), "{e}");
    // Trailing garbage.
    let mut p = 3u16.to_le_bytes().to_vec();
    p.push(7);
    let e = decode(&with_payload(7, &p), 0).unwrap_err();
    assert!(e.to_string().contains("trailing"), "{e}");
}

/// `SetControls` with one entry: name, then a raw tag and value bytes.
fn set_one(name: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
    let mut p = 1u16.to_le_bytes().to_vec();
    p.extend_from_slice(&(name.len() as u16).to_le_bytes());
    p.extend_from_slice(name);
    p.push(tag);
    p.extend_from_slice(value);
    with_payload(10, &p)
}

#[test]
fn hostile_controls_are_clear_errors() {
    // Unknown value type, a bool that is neither 0 nor 1, NaN, infinity.
    let e = decode(&set_one(b"Brightness", 9, &[0; 8]), 0).unwrap_err();
    assert!(e.to_string().contains("unknown value type 9"), "{e}");
    let e = decode(&set_one(b"AeEnable", 1, &[2]), 0).unwrap_err();
    assert!(e.to_string().contains("bool byte 2"), "{e}");
    let e = decode(
        &set_one(b"Brightness", 3, &f32::NAN.to_bits().to_le_bytes()),
        0,
    )
    .unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
    let inf = f32::INFINITY.to_bits().to_le_bytes();
    assert!(decode(&set_one(b"Brightness", 3, &inf), 0).is_err());
    // Empty and over-long names, both ways.
    let e = decode(&set_one(b"", 2, &[0; 8]), 0).unwrap_err();
    assert!(
        matches!(e, ProtoError::TooLong("control name", 0, _)),
        "{e}"
    );
    let long = vec![b'A'; 65];
    let e = decode(&set_one(&long, 2, &[0; 8]), 0).unwrap_err();
    assert!(
        matches!(e, ProtoError::TooLong("control name", 65, 64)),
        "{e}"
    );
    let e = encode(&Message::SetControls(vec![(
        "A".repeat(65),
        ControlValue::Int(1),
    )]))
    .unwrap_err();
    assert!(
        matches!(e, ProtoError::TooLong("control name", 65, 64)),
        "{e}"
    );
    assert!(encode(&Message::SetControls(vec![(
        "B".into(),
        ControlValue::Float(f32::NAN)
    )]))
    .is_err());
    // Counts: 65535 claimed allocates nothing; MAX_CONTROLS + 1 refused.
    let e = decode(&with_payload(9, &u16::MAX.to_le_bytes()), 0).unwrap_err();
    assert!(
        matches!(e, ProtoError::TooMany("controls", 65535, _)),
        "{e}"
    );
    let many = vec![("X".to_string(), ControlValue::Int(0)); MAX_CONTROLS + 1];
    assert!(matches!(
        encode(&Message::SetControls(many)),
        Err(ProtoError::TooMany("controls", 65, 64))
    ));
    // The largest legal Controls message fits in one datagram.
    let biggest: Vec<ControlInfo> = (0..MAX_CONTROLS)
        .map(|i| ControlInfo {
            name: format!("{i:0>64}"),
            min: ControlValue::Int(i64::MIN),
            max: ControlValue::Int(i64::MAX),
            default: ControlValue::Int(0),
        })
        .collect();
    let bytes = encode(&Message::Controls(biggest.clone())).expect("fits");
    assert!(bytes.len() <= MAX_MESSAGE, "{}", bytes.len());
    assert_eq!(
        decode(&bytes, 0).expect("decode"),
        Message::Controls(biggest)
    );
    // Infos: mixed types, min > max, default outside, duplicates.
    let info = |min, max, default| ControlInfo {
        name: "Contrast".into(),
        min,
        max,
        default,
    };
    use ControlValue::{Bool, Float, Int};
    for bad in [
        info(Float(0.0), Int(2), Float(1.0)),
        info(Float(2.0), Float(1.0), Float(1.5)),
        info(Int(0), Int(10), Int(11)),
        info(Bool(false), Bool(false), Bool(true)),
    ] {
        let e = encode(&Message::Controls(vec![bad.clone()])).unwrap_err();
        assert!(matches!(e, ProtoError::BadControl(_)), "{bad:?}: {e}");
        // The same bytes written by hand are refused by decode too.
        let mut p = 1u16.to_le_bytes().to_vec();
        p.extend_from_slice(&8u16.to_le_bytes());
        p.extend_from_slice(b"Contrast");
        for v in [bad.min, bad.max, bad.default] {
            match v {
                Bool(b) => p.extend_from_slice(&[1, u8::from(b)]),
                Int(i) => {
                    p.push(2);
                    p.extend_from_slice(&i.to_le_bytes());
                }
                Float(f) => {
                    p.push(3);
                    p.extend_from_slice(&f.to_bits().to_le_bytes());
                }
            }
        }
        let e = decode(&with_payload(9, &p), 0).unwrap_err();
        assert!(matches!(e, ProtoError::BadControl(_)), "{bad:?}: {e}");
    }
    let good = info(Float(0.0), Float(32.0), Float(1.0));
    let twice = encode(&Message::Controls(vec![good.clone(), good])).expect("encode");
    let e = decode(&twice, 0).unwrap_err();
    assert!(e.to_string().contains("announced twice"), "{e}");
}

#[test]
fn control_values_are_checked_against_their_info() {
    let infos = fake::fake_controls();
    let ok = [
        ("Brightness".to_string(), ControlValue::Float(1.0)),
        ("AeEnable".to_string(), ControlValue::Bool(false)),
        ("ExposureTime".to_string(), ControlValue::Int(100)),
    ];
    crate::control::check_all(&infos, &ok).expect("in range");
    let (name, why) = crate::control::check_all(
        &infos,
        &[
            ("AeEnable".into(), ControlValue::Bool(true)),
            ("Brightness".into(), ControlValue::Float(1.01)),
        ],
    )
    .unwrap_err();
    assert_eq!(name, "Brightness");
    assert_eq!(why, "Brightness: 1.01 is outside -1..=1");
    let (name, _) =
        crate::control::check_all(&infos, &[("Zoom".into(), ControlValue::Int(1))]).unwrap_err();
    assert_eq!(name, "Zoom");
    let (_, why) = crate::control::check_all(&infos, &[("AeEnable".into(), ControlValue::Int(1))])
        .unwrap_err();
    assert!(why.contains("takes a Bool value"), "{why}");
}

#[test]
fn descriptor_counts_must_match() {
    let started = &every_message()[5];
    let bytes = encode(started).expect("encode");
    let e = decode(&bytes, 2).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Started must carry 3 file descriptor(s), it carried 2"
    );
    let release = encode(&Message::Release { buffer: 0 }).expect("encode");
    assert!(matches!(
        decode(&release, 1),
        Err(ProtoError::FdCount {
            expected: 0,
            got: 1,
            ..
        })
    ));
}

#[test]
fn layouts_are_checked() {
    let good = layout();
    good.validate().expect("fake layout is valid");
    assert_eq!(good.stride, 64);
    assert_eq!(good.plane_rows(), 48, "rows padded to 16");
    let cases: Vec<(Layout, &str)> = vec![
        (
            Layout {
                fourcc: u32::from_le_bytes(*b"RGB3"),
                ..good
            },
            "pixel format",
        ),
        (Layout { width: 0, ..good }, "size"),
        (
            Layout {
                height: 100_000,
                ..good
            },
            "size",
        ),
        (Layout { stride: 10, ..good }, "stride"),
        (
            Layout {
                chroma_offset: 65,
                ..good
            },
            "whole number",
        ),
        (
            Layout {
                chroma_offset: 64,
                ..good
            },
            "whole number",
        ),
        (
            Layout {
                v_offset: 4,
                ..good
            },
            "V offset",
        ),
        (
            Layout {
                fourcc: FOURCC_I420,
                v_offset: 1,
                ..good
            },
            "right after U",
        ),
    ];
    for (l, want) in cases {
        let e = l.validate().unwrap_err().to_string();
        assert!(e.contains(want), "{l:?}: {e}");
    }
    let i420 = Layout {
        fourcc: FOURCC_I420,
        v_offset: good.chroma_offset + 32 * 24,
        ..good
    };
    i420.validate().expect("planar I420");
    // Chroma rows are padded like luma rows: 48 / 2, not 36 / 2.
    assert_eq!(i420.frame_len(), u64::from(i420.v_offset) + 32 * 24);
    assert_eq!(good.frame_len(), 64 * 48 + 64 * 24);
    // A Started whose buffers are too small for the layout.
    let mut m = every_message()[5].clone();
    if let Message::Started { buffers, .. } = &mut m {
        buffers[1].len = 100;
    }
    let e = decode(&encode(&m).expect("encode"), 3).unwrap_err();
    assert!(e.to_string().contains("cannot hold"), "{e}");
}

#[test]
fn version_handshake() {
    let hello = |version| Message::Hello {
        version,
        software: "x".into(),
    };
    assert_eq!(check_hello(&hello(PROTOCOL_VERSION)).expect("same"), "x");
    let e = check_hello(&hello(PROTOCOL_VERSION + 1)).unwrap_err();
    assert!(
        e.to_string()
            .contains("protocol version 3, this pinholed speaks 2"),
        "{e}"
    );
    // A helper from before camera controls is refused, not half-served.
    let e = check_hello(&hello(1)).unwrap_err();
    assert!(
        e.to_string()
            .contains("install the helper from the same pinhole release"),
        "{e}"
    );
    let e = check_hello(&Message::ListCameras).unwrap_err();
    assert_eq!(e.to_string(), "expected Hello, got ListCameras");
}

#[test]
fn buffer_ownership() {
    let mut o = Ownership::new(2);
    o.take(1).expect("take");
    assert!(matches!(o.take(1), Err(ProtoError::BufferBusy(1))));
    assert!(matches!(
        o.take(2),
        Err(ProtoError::NoSuchBuffer {
            buffer: 2,
            count: 2
        })
    ));
    assert_eq!(o.free(), Some(0));
    o.take(0).expect("take");
    assert_eq!(o.free(), None);
    assert!(o.release(1));
    assert!(!o.release(1), "double release");
    assert!(!o.release(9));
    assert_eq!(o.free(), Some(1));
}

fn sealed_memfd(len: usize, seal: bool) -> std::os::fd::OwnedFd {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd =
        memfd_create(c"t", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING).expect("memfd");
    nix::unistd::write(&fd, &vec![7u8; len]).expect("write");
    if seal {
        fcntl(&fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK)).expect("seal");
    }
    fd
}

#[test]
fn descriptors_travel_with_their_message() {
    let (a, b) = Channel::pair().expect("pair");
    let l = layout();
    let len = l.frame_len();
    let fds = [
        sealed_memfd(len as usize, true),
        sealed_memfd(len as usize, true),
    ];
    let msg = Message::Started {
        camera: CameraDesc {
            id: "x".into(),
            model: "y".into(),
        },
        layout: l,
        fps_milli: 30_000,
        buffers: vec![BufferDesc { len }; 2],
    };
    // The wrong number of descriptors is refused before anything is sent.
    assert!(matches!(
        a.send(&msg, &[fds[0].as_fd()]),
        Err(ProtoError::FdCount { .. })
    ));
    a.send(&msg, &[fds[0].as_fd(), fds[1].as_fd()])
        .expect("send");
    a.send(&Message::Release { buffer: 0 }, &[]).expect("send");
    let r = b.recv(Some(1000)).expect("recv");
    assert_eq!(r.msg, msg);
    assert_eq!(r.fds.len(), 2);
    let mut fds_in = r.fds.into_iter();
    let map = Mapping::new(fds_in.next().expect("fd"), len).expect("map");
    assert!(
        map.bytes().iter().all(|&x| x == 7),
        "same memory, not a copy"
    );
    map.sync_read(true); // ENOTTY on a memfd: ignored
    let r = b.recv(Some(1000)).expect("second message");
    assert!(r.fds.is_empty());
    assert_eq!(r.msg, Message::Release { buffer: 0 });
    // Nothing more: a timeout, then EOF when the peer goes.
    assert!(matches!(b.recv(Some(10)), Err(ProtoError::Timeout(10))));
    drop(a);
    assert!(matches!(b.recv(Some(1000)), Err(ProtoError::Closed)));
}

#[test]
fn hostile_descriptors_are_refused() {
    // Unsealed memfd: could be truncated under the mapping (SIGBUS).
    let e = Mapping::new(sealed_memfd(4096, false), 4096).unwrap_err();
    assert!(e.to_string().contains("F_SEAL_SHRINK"), "{e}");
    // Smaller than announced.
    let e = Mapping::new(sealed_memfd(100, true), 4096).unwrap_err();
    assert!(
        e.to_string().contains("has 100 bytes, 4096 were announced"),
        "{e}"
    );
    // A message with descriptors it should not carry: the receiver gets a
    // clear error (and closes them).
    let (a, b) = Channel::pair().expect("pair");
    let fd = sealed_memfd(10, true);
    a.send_raw(
        &encode(&Message::ListCameras).expect("encode"),
        &[fd.as_fd()],
    )
    .expect("send");
    let e = b.recv(Some(1000)).unwrap_err();
    assert!(
        matches!(
            e,
            ProtoError::FdCount {
                expected: 0,
                got: 1,
                ..
            }
        ),
        "{e}"
    );
    // More descriptors than any message may carry: cut off by the kernel,
    // reported as such.
    let many: Vec<_> = (0..MAX_BUFFERS + 4)
        .map(|_| sealed_memfd(1, true))
        .collect();
    let borrowed: Vec<_> = many.iter().map(|f| f.as_fd()).collect();
    a.send_raw(&encode(&Message::ListCameras).expect("encode"), &borrowed)
        .expect("send");
    let e = b.recv(Some(1000)).unwrap_err();
    assert!(e.to_string().contains("file descriptors"), "{e}");
    // An oversized datagram.
    a.send_raw(&vec![0u8; MAX_MESSAGE + 100], &[])
        .expect("send");
    let e = b.recv(Some(1000)).unwrap_err();
    assert!(matches!(e, ProtoError::TooLong("message", ..)), "{e}");
}

#[test]
fn a_stream_socket_is_not_a_helper_socket() {
    let (s, _t) = std::os::unix::net::UnixStream::pair().expect("pair");
    let e = Channel::from_fd(s.into()).unwrap_err();
    assert!(e.to_string().contains("SOCK_SEQPACKET"), "{e}");
}

/// The daemon's side of a session against the fake helper, by hand.
#[test]
fn fake_helper_session() {
    let (daemon, helper) = Channel::pair().expect("pair");
    let t = std::thread::spawn(move || fake::serve(&helper, &FakeOptions::default()));
    let hello = daemon.recv(Some(5000)).expect("hello");
    check_hello(&hello.msg).expect("version");
    daemon
        .send(
            &Message::Start {
                camera: String::new(),
                width: 100,
                height: 50,
                fps: 100,
            },
            &[],
        )
        .expect("start");
    let started = daemon.recv(Some(5000)).expect("started");
    let Message::Started {
        camera,
        layout,
        buffers,
        ..
    } = started.msg
    else {
        panic!("not Started: {:?}", started.msg);
    };
    assert_eq!(camera.id, "fake/0");
    assert_eq!((layout.width, layout.height, layout.stride), (100, 50, 128));
    let m = daemon.recv(Some(5000)).expect("controls").msg;
    assert_eq!(m, Message::Controls(fake::fake_controls()));
    let maps: Vec<Mapping> = started
        .fds
        .into_iter()
        .zip(&buffers)
        .map(|(fd, b)| Mapping::new(fd, b.len).expect("map"))
        .collect();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let m = daemon.recv(Some(5000)).expect("frame").msg;
        let Message::Frame {
            buffer, sequence, ..
        } = m
        else {
            panic!("not a Frame: {m:?}");
        };
        let pic = maps[usize::from(buffer)].bytes();
        // The fake's chroma encodes the sequence number.
        let u = pic[layout.chroma_offset as usize];
        assert_eq!(
            u64::from(u),
            sequence % 64 + 96,
            "picture {sequence} in buffer {buffer}"
        );
        seen.push(sequence);
        daemon
            .send(&Message::Release { buffer }, &[])
            .expect("release");
    }
    assert_eq!(
        seen,
        (0..10).collect::<Vec<_>>(),
        "no frame lost while buffers are released"
    );
    // Controls: a refusal names the control and changes nothing; an
    // accepted Brightness shifts the luma of the following pictures.
    let mean_luma = |daemon: &Channel, n: usize, acks: &mut Vec<Message>| -> f64 {
        let mut sums = Vec::new();
        while sums.len() < n {
            let m = daemon.recv(Some(5000)).expect("message").msg;
            match m {
                Message::Frame { buffer, .. } => {
                    let pic = maps[usize::from(buffer)].bytes();
                    let (w, h, s) = (
                        layout.width as usize,
                        layout.height as usize,
                        layout.stride as usize,
                    );
                    let sum: u64 = (0..h)
                        .flat_map(|y| pic[y * s..y * s + w].iter())
                        .map(|&p| u64::from(p))
                        .sum();
                    sums.push(sum as f64 / (w * h) as f64);
                    daemon
                        .send(&Message::Release { buffer }, &[])
                        .expect("release");
                }
                other => acks.push(other),
            }
        }
        sums.iter().sum::<f64>() / n as f64
    };
    let mut acks = Vec::new();
    let before = mean_luma(&daemon, 5, &mut acks);
    let too_bright = Message::SetControls(vec![
        ("Contrast".into(), ControlValue::Float(2.0)),
        ("Brightness".into(), ControlValue::Float(3.0)),
    ]);
    daemon.send(&too_bright, &[]).expect("set");
    let same = mean_luma(&daemon, 5, &mut acks);
    assert_eq!(
        acks,
        vec![Message::ControlsRefused {
            control: "Brightness".into(),
            reason: "Brightness: 3 is outside -1..=1".into()
        }]
    );
    assert!((same - before).abs() < 10.0, "{before} → {same}");
    acks.clear();
    let set = Message::SetControls(vec![("Brightness".into(), ControlValue::Float(0.5))]);
    daemon.send(&set, &[]).expect("set");
    let _ = mean_luma(&daemon, 2, &mut acks); // frames already in flight
    let after = mean_luma(&daemon, 5, &mut acks);
    assert_eq!(acks, vec![Message::ControlsSet]);
    assert!(
        after - before > 35.0,
        "Brightness 0.5: luma {before:.1} → {after:.1}"
    );
    drop(maps);
    drop(daemon);
    t.join()
        .expect("thread")
        .expect("fake ends cleanly when the daemon goes");
}

#[test]
fn fake_helper_lists_cameras_and_refuses_unknown_ones() {
    let (daemon, helper) = Channel::pair().expect("pair");
    let t = std::thread::spawn(move || fake::serve(&helper, &FakeOptions::default()));
    daemon.recv(Some(5000)).expect("hello");
    daemon.send(&Message::ListCameras, &[]).expect("list");
    let m = daemon.recv(Some(5000)).expect("cameras").msg;
    assert_eq!(m, Message::Cameras(FakeOptions::default().cameras));
    t.join().expect("thread").expect("ok");

    let (daemon, helper) = Channel::pair().expect("pair");
    let t = std::thread::spawn(move || fake::serve(&helper, &FakeOptions::default()));
    daemon.recv(Some(5000)).expect("hello");
    let start = Message::Start {
        camera: "nope".into(),
        width: 64,
        height: 64,
        fps: 10,
    };
    daemon.send(&start, &[]).expect("start");
    let m = daemon.recv(Some(5000)).expect("error").msg;
    assert_eq!(m, Message::Error("no camera \"nope\"".into()));
    assert!(t.join().expect("thread").is_err());
}

#[test]
fn saved_values_are_coerced_to_the_cameras_types() {
    use crate::control::coerce;
    use ControlValue::{Bool, Float, Int};
    let infos = fake::fake_controls();
    let by = |n: &str| infos.iter().find(|i| i.name == n).expect("control").clone();
    assert_eq!(coerce(&by("Brightness"), Int(1)), Some(Float(1.0)));
    assert_eq!(coerce(&by("Brightness"), Int(2)), None, "out of range");
    assert_eq!(coerce(&by("Brightness"), Bool(true)), None);
    assert_eq!(coerce(&by("AeEnable"), Int(0)), Some(Bool(false)));
    assert_eq!(coerce(&by("AeEnable"), Int(2)), None);
    assert_eq!(coerce(&by("ExposureTime"), Float(5000.0)), Some(Int(5000)));
    assert_eq!(coerce(&by("ExposureTime"), Float(5000.5)), None);
    assert_eq!(coerce(&by("ExposureTime"), Int(1)), None, "below 100");
}
