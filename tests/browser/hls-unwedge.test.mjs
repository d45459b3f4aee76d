// Unit tests (no browser) for the hls.js stall watchdog in web/player/hls.js (HlsPlayer._unwedge):
// playback waiting at the buffer end while the playlist is ahead gets stepped past the end once
// it has lasted WEDGED_MS, and only then.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { HlsPlayer } from '../../web/player/hls.js';

let now = 0;
const realNow = performance.now.bind(performance);
beforeEach(() => { now = 10_000; performance.now = () => now; });
afterEach(() => { performance.now = realNow; });

function ranges(...pairs) {
  return { length: pairs.length, start: (i) => pairs[i][0], end: (i) => pairs[i][1] };
}

/** A player wired to a fake <video> and a fake hls.js instance (no DOM, no timers). */
function player({ ct = 17.99, buffered = [[14, 18]], readyState = 2, edge = 19, sync = 18.4 } = {}) {
  const p = new HlsPlayer({ url: 'http://x/hls/index.m3u8' });
  p.video = { paused: false, seeking: false, readyState, currentTime: ct, buffered: ranges(...buffered) };
  p.hls = { latestLevelDetails: { edge }, liveSyncPosition: sync };
  return p;
}

function tickFor(p, ms) {
  for (let t = 0; t <= ms; t += 250) { p._unwedge(); now += 250; }
}

test('waiting at the buffer end with parts listed beyond it: stepped to the live sync position', () => {
  const p = player();
  tickFor(p, 500);
  assert.equal(p.nudges, 0, 'not before WEDGED_MS');
  tickFor(p, 500);
  assert.equal(p.nudges, 1);
  assert.equal(p.video.currentTime, 18.4);
});

test('live sync position behind the buffer end: stepped just past the end (more than maxBufferHole)', () => {
  const p = player({ sync: 17.5 });
  tickFor(p, 1000);
  assert.equal(p.nudges, 1);
  assert.ok(Math.abs(p.video.currentTime - 18.15) < 1e-9, `${p.video.currentTime}`);
});

test('nothing listed beyond the buffer (plain live-edge wait): left alone', () => {
  const p = player({ edge: 18.2 });
  tickFor(p, 3000);
  assert.equal(p.nudges, 0);
  assert.equal(p.video.currentTime, 17.99);
});

test('playing with data ahead, paused, seeking, or nothing buffered yet: left alone', () => {
  for (const opts of [{ readyState: 4 }, { ct: 16 }, { buffered: [] }]) {
    const p = player(opts);
    tickFor(p, 3000);
    assert.equal(p.nudges, 0, JSON.stringify(opts));
  }
  const paused = player();
  paused.video.paused = true;
  tickFor(paused, 3000);
  assert.equal(paused.nudges, 0);
});

test('a wait that ends before WEDGED_MS resets the clock', () => {
  const p = player();
  tickFor(p, 500);
  p.video.readyState = 4; // data arrived
  tickFor(p, 250);
  p.video.readyState = 2;
  tickFor(p, 500);
  assert.equal(p.nudges, 0);
});
