//! Arbitrary datagrams through the message parser: nothing may panic or
//! allocate beyond the limits, and whatever parses must re-encode to the
//! same bytes (no two encodings of one message).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinhole_camera_proto::msg::{decode, encode, Message};

fuzz_target!(|data: &[u8]| {
    let Some((&fds, datagram)) = data.split_first() else {
        return;
    };
    let Ok(msg) = decode(datagram, usize::from(fds % 20)) else {
        return;
    };
    if let Message::Started { layout, .. } = &msg {
        layout.validate().expect("decode validated the layout");
        let _ = layout.plane_rows();
    }
    let again = encode(&msg).expect("a decoded message encodes");
    assert_eq!(again, datagram, "one encoding per message");
    assert_eq!(decode(&again, msg.fd_count()).expect("round trip"), msg);
});
