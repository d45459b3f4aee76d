use std::os::fd::AsFd;

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
            .contains("protocol version 2, this pinholed speaks 1"),
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
