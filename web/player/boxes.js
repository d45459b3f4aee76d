// Minimal ISO-BMFF (MP4) box reading: just what the live player needs to know
// about the fragments it appends (timescale, prft wallclock, tfdt).

const NTP_UNIX_OFFSET_S = 2208988800; // seconds from 1900-01-01 to 1970-01-01
const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'moof', 'traf', 'mvex', 'minf', 'stbl']);

function fourcc(dv, off) {
  return String.fromCharCode(dv.getUint8(off), dv.getUint8(off + 1), dv.getUint8(off + 2), dv.getUint8(off + 3));
}

function u64(dv, off) {
  // Exact up to 2^53, which covers µs media times for ~285 years.
  return dv.getUint32(off) * 4294967296 + dv.getUint32(off + 4);
}

/** Iterate over the boxes in [start, end) of a DataView: yields {type, start, size, body}. */
export function* boxes(dv, start = 0, end = dv.byteLength) {
  let off = start;
  while (off + 8 <= end) {
    let size = dv.getUint32(off);
    const type = fourcc(dv, off + 4);
    let header = 8;
    if (size === 1) {
      if (off + 16 > end) return;
      size = u64(dv, off + 8);
      header = 16;
    } else if (size === 0) {
      size = end - off;
    }
    if (size < header || off + size > end) return; // truncated or corrupt: stop quietly
    yield { type, start: off, size, body: off + header };
    off += size;
  }
}

/** Depth-first search for the first box of `type` (descending into the usual containers). */
export function findBox(dv, type, start = 0, end = dv.byteLength) {
  for (const b of boxes(dv, start, end)) {
    if (b.type === type) return b;
    if (CONTAINERS.has(b.type)) {
      const inner = findBox(dv, type, b.body, b.start + b.size);
      if (inner) return inner;
    }
  }
  return null;
}

/** Timescale of the (first) track from an init segment's mdhd, or null. */
export function parseTimescale(buf) {
  const dv = new DataView(buf);
  const mdhd = findBox(dv, 'mdhd');
  if (!mdhd) return null;
  const version = dv.getUint8(mdhd.body);
  return dv.getUint32(mdhd.body + 4 + (version === 1 ? 16 : 8));
}

/** Convert a 64-bit NTP timestamp (seconds since 1900 . 32-bit fraction) to Unix ms. */
export function ntpToUnixMs(seconds, fraction) {
  return (seconds - NTP_UNIX_OFFSET_S) * 1000 + (fraction / 4294967296) * 1000;
}

/**
 * Look at one media message (optional prft, moof, mdat).
 * Returns {prft: {wallMs, mediaTime} | null, tfdt: number | null, keyframe: bool | null}.
 * mediaTime and tfdt are in the track timescale.
 */
export function parseFragment(buf) {
  const dv = new DataView(buf);
  let prft = null;
  let tfdt = null;
  for (const b of boxes(dv)) {
    if (b.type === 'prft' && b.size >= 8 + 4 + 4 + 8 + 4) {
      const version = dv.getUint8(b.body);
      const p = b.body + 4 + 4; // version/flags, reference_track_ID
      const wallMs = ntpToUnixMs(dv.getUint32(p), dv.getUint32(p + 4));
      const mediaTime = version === 1 ? u64(dv, p + 8) : dv.getUint32(p + 8);
      prft = { wallMs, mediaTime };
    } else if (b.type === 'moof') {
      const t = findBox(dv, 'tfdt', b.body, b.start + b.size);
      if (t) {
        const version = dv.getUint8(t.body);
        tfdt = version === 1 ? u64(dv, t.body + 4) : dv.getUint32(t.body + 4);
      }
    }
  }
  return { prft, tfdt };
}

/**
 * The track_ID of a media message's (first) tfhd, or null. pinholed's video track is 1;
 * other tracks (audio) have their own fragments.
 */
export function fragmentTrack(buf) {
  const dv = new DataView(buf);
  const moof = findBox(dv, 'moof');
  const tfhd = moof && findBox(dv, 'tfhd', moof.body, moof.start + moof.size);
  if (!tfhd || tfhd.body + 8 > dv.byteLength) return null;
  return dv.getUint32(tfhd.body + 4);
}

/**
 * An init segment with only the video track (track_ID 1): the other `trak`s and their `trex`
 * removed, so a SourceBuffer made for the video codec accepts it (the audio is played apart).
 */
export function videoOnlyInit(buf) {
  const src = new Uint8Array(buf);
  const dv = new DataView(buf);
  const trakId = (b) => {
    const tkhd = findBox(dv, 'tkhd', b.body, b.start + b.size);
    return tkhd ? dv.getUint32(tkhd.body + (dv.getUint8(tkhd.body) === 1 ? 20 : 12)) : null;
  };
  const drop = (b) => (b.type === 'trak' && trakId(b) !== 1) ||
    (b.type === 'trex' && dv.getUint32(b.body + 4) !== 1);
  const join = (parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) { out.set(p, off); off += p.length; }
    return out;
  };
  // A box as is, or (moov, mvex) rebuilt from the children it keeps.
  const copy = (b) => {
    if (b.type !== 'moov' && b.type !== 'mvex') return src.subarray(b.start, b.start + b.size);
    const body = join([...boxes(dv, b.body, b.start + b.size)].filter((c) => !drop(c)).map(copy));
    const head = new Uint8Array(8);
    new DataView(head.buffer).setUint32(0, 8 + body.length);
    head.set(src.subarray(b.start + 4, b.start + 8), 4);
    return join([head, body]);
  };
  return join([...boxes(dv)].map(copy)).buffer;
}
