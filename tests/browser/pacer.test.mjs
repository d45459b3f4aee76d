// Unit tests (no browser) for the WebCodecs frame pacer (web/player/pacer.js): the first delay
// covers the 95th percentile of decode − capture, it then descends while frames are on time,
// backs off and holds at the first late ones, moves a refresh later when a held delay misses
// too often, and constant clock offsets do not matter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pacer } from '../../web/player/pacer.js';

const R = 1000 / 60;
const FRAME = 1000 / 30;

/**
 * Feed frames i = from…to−1 at 30 fps; frame i is decoded lat(i) ms after its capture. Animation
 * frames every R ms (the grid the captures sit on); a paced frame is drawn on the first one at or
 * after its due time once decoded. Calls tune() after every frame. Returns the due times.
 */
function run(p, { from = 0, to, lat, skew = 0 }) {
  const dues = [];
  for (let i = from; i < to; i++) {
    const cap = i * FRAME; // the camera's clock
    const ready = cap + lat(i) + skew; // the viewer's
    const due = p.due(cap, ready);
    if (due != null) {
      const draw = Math.ceil((Math.max(due - 1, ready) - skew) / R - 1e-9) * R + skew;
      p.shown(due, ready, draw - R);
    }
    dues.push(due);
    p.tune(ready);
  }
  return dues;
}

test('learns the delay from the first frames (95th percentile), then paces capture + delay', () => {
  const p = new Pacer({ warm: 20, q: 0.95 });
  const dues = run(p, { to: 20, lat: (i) => (i === 5 ? 20 : 8) });
  assert.deepEqual(dues, Array(20).fill(null), 'no pacing while learning');
  assert.equal(p.delay, 20, 'sample ⌊0.95 · 20⌋ = 19 of the sorted 20: the slowest');
  assert.equal(p.due(1000, 1008), 1020);
});

test('descends while frames are on time, backs off at the first late ones, then holds', () => {
  const p = new Pacer({ warm: 30, stepMs: 2, holdMs: 60000 });
  // Every frame decoded 8 ms after capture, but the first 30 (learning) 40 ms: D starts high.
  run(p, { to: 30, lat: (i) => (i < 30 ? 40 : 8) });
  assert.ok(Math.abs(p.delay - 40) < 1e-6, `delay ${p.delay}`);
  run(p, { from: 30, to: 30 + 30 * 30, lat: () => 8 });
  // Frames are decoded 8 ms after capture and captures sit on a refresh: the earliest refresh
  // they make is capture + R, which any D in (1, 1 + R] gives. It came down into that range.
  assert.ok(p.delay > 1 && p.delay <= 1 + R, `delay ${p.delay}`);
  assert.ok(p.late <= 45, `${p.late} late frames on the way down (about a second of them)`);
  const held = p.delay;
  run(p, { from: 930, to: 930 + 30 * 30, lat: () => 8 });
  assert.equal(p.delay, held, 'holds still');
});

test('keyframes late every 2 s do not stop the descent', () => {
  const p = new Pacer({ warm: 30, stepMs: 2 });
  run(p, { to: 30, lat: () => 40 });
  // P frames at +8, every 60th frame (an IDR) at +22.
  run(p, { from: 30, to: 30 + 30 * 30, lat: (i) => (i % 60 === 0 ? 22 : 8) });
  assert.ok(p.delay <= 1 + R, `delay ${p.delay} waits for the IDRs (a refresh later)`);
  assert.ok(p.delay > 1, `delay ${p.delay} makes P frames late`);
});

test('while holding, more than 4 % late moves the delay one refresh later', () => {
  const p = new Pacer({ warm: 30, stepMs: 2, holdMs: 600000 });
  run(p, { to: 30, lat: () => 9 });
  run(p, { from: 30, to: 300, lat: () => 9 }); // descends to the edge and holds
  const held = p.delay;
  assert.ok(p.holdUntil > 0, 'holding');
  // The machine gets slower: frames now decoded after their refresh.
  run(p, { from: 300, to: 420, lat: () => 21 });
  assert.ok(p.delay >= held + R - 1e-9, `delay ${p.delay} after ${held}`);
  const lateBefore = p.late;
  run(p, { from: 420, to: 600, lat: () => 21 });
  assert.equal(p.late, lateBefore, 'one slot later, on time again');
  assert.ok(p.late > 0);
});

test('a constant clock offset between camera and viewer changes nothing but the numbers', () => {
  const a = new Pacer({ warm: 10 });
  const b = new Pacer({ warm: 10 });
  run(a, { to: 200, lat: (i) => 9 + (i % 7) });
  run(b, { to: 200, lat: (i) => 9 + (i % 7), skew: 1.7e12 });
  assert.ok(Math.abs(b.delay - a.delay - 1.7e12) < 1e-3, `${b.delay - a.delay}`);
  assert.equal(b.late, a.late);
});
