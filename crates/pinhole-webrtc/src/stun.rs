//! Which session a datagram belongs to. Every session shares one UDP
//! port, so the first packet from a new address must say whose it is: an
//! ICE connectivity check (a STUN binding request) carries
//! `USERNAME = <our ufrag>:<their ufrag>` (RFC 8445 §7.2.2). Later packets
//! (DTLS, SRTP) are routed by their source address. Pure; fuzzed.

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const USERNAME: u16 = 0x0006;

/// The local (our) ufrag from a STUN binding request, if `packet` is one.
pub fn local_ufrag(packet: &[u8]) -> Option<&str> {
    if packet.len() < 20 || packet[0] & 0xC0 != 0 || packet[4..8] != MAGIC_COOKIE {
        return None;
    }
    let msg_type = u16::from_be_bytes([packet[0], packet[1]]);
    if msg_type != BINDING_REQUEST {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let attrs = packet.get(20..20 + len)?;
    let mut at = 0;
    while at + 4 <= attrs.len() {
        let kind = u16::from_be_bytes([attrs[at], attrs[at + 1]]);
        let alen = usize::from(u16::from_be_bytes([attrs[at + 2], attrs[at + 3]]));
        let value = attrs.get(at + 4..at + 4 + alen)?;
        if kind == USERNAME {
            let name = std::str::from_utf8(value).ok()?;
            return name.split_once(':').map(|(local, _)| local);
        }
        at += 4 + alen.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(username: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A PRIORITY attribute first, as browsers send it.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        attrs.extend_from_slice(&USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut p = vec![0x00, 0x01];
        p.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        p.extend_from_slice(&MAGIC_COOKIE);
        p.extend_from_slice(&[7; 12]);
        p.extend_from_slice(&attrs);
        p
    }

    #[test]
    fn finds_our_ufrag_in_a_binding_request() {
        assert_eq!(local_ufrag(&binding(b"srv1:cli")), Some("srv1"));
        assert_eq!(local_ufrag(&binding(b"abc:defgh")), Some("abc"));
    }

    #[test]
    fn ignores_everything_else() {
        assert_eq!(local_ufrag(&binding(b"nocolon")), None);
        let mut resp = binding(b"a:b");
        resp[1] = 0x01;
        resp[0] = 0x01; // a success response
        assert_eq!(local_ufrag(&resp), None);
        let mut short = binding(b"a:b");
        short.truncate(short.len() - 4);
        assert_eq!(local_ufrag(&short), None);
        // DTLS and RTP first bytes.
        assert_eq!(local_ufrag(&[22; 40]), None);
        assert_eq!(local_ufrag(&[0x80; 40]), None);
        assert_eq!(local_ufrag(&[]), None);
    }
}
