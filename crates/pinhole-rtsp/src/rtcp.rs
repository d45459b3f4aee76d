//! RTCP sender reports (RFC 3550 §6.4.1): the NTP wall-clock time of an RTP
//! timestamp, so a client can line tracks up and measure delay, with the
//! SDES CNAME every compound packet must carry (§6.1).

/// Seconds from 1900 (NTP) to 1970 (Unix).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Unix µs as a 64-bit NTP timestamp (seconds, fraction).
pub fn ntp(unix_us: u64) -> u64 {
    let secs = unix_us / 1_000_000 + NTP_UNIX_OFFSET;
    let frac = ((unix_us % 1_000_000) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// A compound RTCP packet: SR (no report blocks) + SDES CNAME.
/// `wall_us`: the capture wall-clock time of the frame stamped `rtp_ts`.
pub fn sender_report(
    ssrc: u32,
    wall_us: u64,
    rtp_ts: u32,
    packets: u32,
    octets: u32,
    cname: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&[0x80, 200, 0, 6]); // V=2, RC=0, PT=SR, 7 words
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&ntp(wall_us).to_be_bytes());
    out.extend_from_slice(&rtp_ts.to_be_bytes());
    out.extend_from_slice(&packets.to_be_bytes());
    out.extend_from_slice(&octets.to_be_bytes());
    // SDES: one chunk, CNAME item, END, padded to 32 bits.
    let name = &cname.as_bytes()[..cname.len().min(255)];
    let chunk = 4 + 2 + name.len() + 1;
    let padded = chunk.div_ceil(4) * 4;
    let words = (4 + padded) / 4 - 1;
    out.extend_from_slice(&[0x81, 202]);
    out.extend_from_slice(&(words as u16).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(1); // CNAME
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.resize(out.len() + (padded - chunk) + 1, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ntp_of_unix_times() {
        assert_eq!(ntp(0), NTP_UNIX_OFFSET << 32);
        assert_eq!(ntp(1_500_000) & 0xffff_ffff, 1 << 31, "half a second");
        assert_eq!(ntp(1_500_000) >> 32, NTP_UNIX_OFFSET + 1);
    }

    #[test]
    fn sr_layout() {
        let p = sender_report(
            0xdead_beef,
            1_700_000_000_250_000,
            12345,
            7,
            9000,
            "pinhole",
        );
        assert_eq!(p.len() % 4, 0);
        assert_eq!(&p[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&p[4..8], &0xdead_beefu32.to_be_bytes());
        assert_eq!(
            u32::from_be_bytes(p[8..12].try_into().unwrap()) as u64,
            1_700_000_000 + NTP_UNIX_OFFSET
        );
        assert_eq!(
            u32::from_be_bytes(p[12..16].try_into().unwrap()),
            1 << 30,
            "quarter second"
        );
        assert_eq!(u32::from_be_bytes(p[16..20].try_into().unwrap()), 12345);
        assert_eq!(u32::from_be_bytes(p[20..24].try_into().unwrap()), 7);
        assert_eq!(u32::from_be_bytes(p[24..28].try_into().unwrap()), 9000);
        let sdes = &p[28..];
        assert_eq!(sdes[0..2], [0x81, 202]);
        let words = u16::from_be_bytes([sdes[2], sdes[3]]) as usize;
        assert_eq!((words + 1) * 4, sdes.len());
        assert_eq!(&sdes[8..8 + 2 + 7], b"\x01\x07pinhole");
        assert_eq!(sdes[17], 0, "END");
    }
}
