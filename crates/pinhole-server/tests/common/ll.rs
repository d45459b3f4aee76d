//! A light LL-HLS client's parsing: where the live edge is, the newest
//! part, and when a part's media ends (from its boxes).
#![allow(dead_code)] // not every test uses every helper

/// (msn, part) of the preload hint: the next part to appear.
pub fn media_playlist_edge(text: &str) -> Option<(u64, u64)> {
    let hint = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))?;
    let stem = hint.trim_end_matches('"').trim_end_matches(".m4s");
    let mut it = stem.rsplit('-').next()?.split('.');
    let msn = it.next()?.parse().ok()?;
    let part = it.next()?.parse().ok()?;
    Some((msn, part))
}

/// The URI of the newest part listed.
pub fn newest_part(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("#EXT-X-PART:DURATION="))
        .and_then(|l| l.split("URI=\"").nth(1)?.split('"').next())
        .map(str::to_owned)
}

/// End of a part's video media: its `tfdt` plus its samples' durations, in
/// µs (the track timescale is 1 MHz, on the capture clock).
pub fn part_end_us(data: &[u8]) -> u64 {
    let find = |tag: &[u8]| data.windows(4).position(|w| w == tag).map(|i| i + 4);
    let be32 = |i: usize| {
        data.get(i..i + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(tfdt), Some(trun)) = (find(b"tfdt"), find(b"trun")) else {
        return 0;
    };
    let base = if data.get(tfdt) == Some(&1) {
        (u64::from(be32(tfdt + 4)) << 32) | u64::from(be32(tfdt + 8))
    } else {
        u64::from(be32(tfdt + 4))
    };
    let flags = be32(trun) & 0xff_ffff;
    let count = be32(trun + 4) as usize;
    let mut i = trun + 8;
    if flags & 0x1 != 0 {
        i += 4;
    }
    if flags & 0x4 != 0 {
        i += 4;
    }
    let per = [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|f| flags & **f != 0)
        .count()
        * 4;
    let mut dur = 0u64;
    for _ in 0..count {
        if flags & 0x100 != 0 {
            dur += u64::from(be32(i));
        }
        i += per;
    }
    base + dur
}
