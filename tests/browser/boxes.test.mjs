// Unit tests (no browser) for web/player/boxes.js: prft/tfdt/mdhd parsing used for the delay estimate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fragmentTrack, parseFragment, parseTimescale, ntpToUnixMs, videoOnlyInit } from '../../web/player/boxes.js';
import { opusConfig } from '../../web/player/audio.js';

function box(type, ...parts) {
  const body = Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + body.length);
  head.write(type, 4, 'latin1');
  return Buffer.concat([head, body]);
}
const u32 = (n) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
const u64 = (n) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b; };
const ab = (buf) => buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);

test('prft v1 + moof/traf/tfdt v1', () => {
  const unixMs = 1_700_000_000_123;
  const ntpSec = Math.floor(unixMs / 1000) + 2208988800;
  const frac = Math.round(((unixMs % 1000) / 1000) * 2 ** 32);
  const media = 90000 * 123456; // a large start, as pinholed sends
  const prft = box('prft', [1, 0, 0, 0], u32(1), u32(ntpSec), u32(frac), u64(media));
  const moof = box('moof', box('mfhd', u32(0), u32(7)), box('traf', box('tfhd', u32(0x20000), u32(1)), box('tfdt', [1, 0, 0, 0], u64(media))));
  const mdat = box('mdat', [0, 0, 0, 1, 0x65]);
  const r = parseFragment(ab(Buffer.concat([prft, moof, mdat])));
  assert.equal(r.tfdt, media);
  assert.equal(r.prft.mediaTime, media);
  assert.ok(Math.abs(r.prft.wallMs - unixMs) < 0.01, `${r.prft.wallMs} vs ${unixMs}`);
});

test('prft v0, no prft, truncated input', () => {
  const prft = box('prft', [0, 0, 0, 0], u32(1), u32(2208988800 + 10), u32(2 ** 31), u32(900));
  const r = parseFragment(ab(Buffer.concat([prft, box('moof', box('traf', box('tfdt', [0, 0, 0, 0], u32(900))))])));
  assert.equal(r.prft.mediaTime, 900);
  assert.equal(r.prft.wallMs, 10500);
  assert.equal(r.tfdt, 900);
  assert.equal(parseFragment(ab(box('moof'))).prft, null);
  const cut = Buffer.concat([prft]).subarray(0, 20);
  assert.deepEqual(parseFragment(ab(cut)), { prft: null, tfdt: null });
});

test('timescale from the init segment mdhd (v0 and v1)', () => {
  const mdhd0 = box('mdhd', [0, 0, 0, 0], u32(0), u32(0), u32(90000), u32(0), u32(0));
  const init0 = Buffer.concat([box('ftyp', 'iso5', u32(0)), box('moov', box('mvhd', u32(0)), box('trak', box('tkhd', u32(0)), box('mdia', mdhd0)))]);
  assert.equal(parseTimescale(ab(init0)), 90000);
  const mdhd1 = box('mdhd', [1, 0, 0, 0], u64(0), u64(0), u32(30000), u64(0), u32(0));
  assert.equal(parseTimescale(ab(box('moov', box('trak', box('mdia', mdhd1))))), 30000);
  assert.equal(parseTimescale(ab(box('moov'))), null);
  assert.equal(ntpToUnixMs(2208988800, 0), 0);
});

test('the track of a fragment (video 1, audio 2) from its tfhd', () => {
  const frag = (id) => ab(Buffer.concat([
    box('prft', [1, 0, 0, 0], u32(id), u32(0), u32(0), u64(0)),
    box('moof', box('mfhd', u32(0), u32(1)), box('traf', box('tfhd', u32(0x20000), u32(id)))),
    box('mdat', [1]),
  ]));
  assert.equal(fragmentTrack(frag(1)), 1);
  assert.equal(fragmentTrack(frag(2)), 2);
  assert.equal(fragmentTrack(ab(box('moof'))), null);
  assert.equal(fragmentTrack(ab(box('moof', box('traf', box('tfhd', u32(0)))))), null);
});

test('videoOnlyInit keeps the video trak and trex, drops the audio ones; opusConfig reads dOps', () => {
  // tkhd v0: version/flags, creation, modification, track_ID.
  const trak = (id, extra) => box('trak', box('tkhd', u32(0), u32(0), u32(0), u32(id)), extra);
  const trex = (id) => box('trex', u32(0), u32(id), u32(1), u32(0), u32(0), u32(0));
  const dops = box('dOps', [0, 2, 0, 120, 0, 0, 0xbb, 0x80, 0, 0, 0]);
  const init = Buffer.concat([
    box('ftyp', Buffer.from('iso6')),
    box('moov', box('mvhd', u32(0)), trak(1, box('mdia')), trak(2, box('mdia', dops)), box('mvex', trex(1), trex(2))),
  ]);
  assert.deepEqual(opusConfig(ab(init)), { channels: 2, preSkip: 120 });
  const out = Buffer.from(videoOnlyInit(ab(init)));
  const want = Buffer.concat([
    box('ftyp', Buffer.from('iso6')),
    box('moov', box('mvhd', u32(0)), trak(1, box('mdia')), box('mvex', trex(1))),
  ]);
  assert.deepEqual(out, want);
  assert.equal(opusConfig(ab(out)), null);
});
