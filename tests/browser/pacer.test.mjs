// Unit tests (no browser) for the WebCodecs frame pacer (web/player/pacer.js), driven by a
// simulation of the player's paced loop: frames decoded at given delays after capture, animation
// frames on a fixed refresh grid, each animation frame drawing the newest frame that is due.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pacer } from '../../web/player/pacer.js';

const FRAME = 1000 / 30;

/**
 * The player's paced mode around a Pacer: 30 fps captures (capture clock), decoded `lat(i)` ms
 * later in the viewer's clock (`skew` ahead of the camera's), animation frames every `R` ms at
 * phase `gridPhase`. Records, per drawn frame, its latency (refresh that drew it − capture).
 */
class Sim {
  constructor(p, { R = 1000 / 60, skew = 0, gridPhase = 5, capJitter = () => 0 } = {}) {
    Object.assign(this, { p, R, skew, capJitter });
    this.i = 0;          // next frame to decode
    this.k = 0;          // next animation frame
    this.gridPhase = gridPhase;
    this.queue = [];     // decoded frames waiting for their refresh
    this.prev = -Infinity;
    this.drawn = [];     // [{i, lat, paced}]
  }

  /** Runs until frame `to` is decoded; `lat(i)` is frame i's decode delay (ms). */
  run(to, lat) {
    while (this.i < to) {
      const ts = this.k * this.R + this.gridPhase + this.skew;
      // Frames decoded before this animation frame.
      for (;;) {
        const cap = this.i * FRAME + this.capJitter(this.i);
        const ready = cap + lat(this.i) + this.skew;
        if (this.i >= to || ready > ts) break;
        const due = this.p.due(cap, ready);
        if (due == null) this.drawn.push({ i: this.i, lat: ready - cap - this.skew, ts: ready, paced: false });
        else this.queue.push({ i: this.i, cap, due, ready });
        this.i++;
      }
      this.p.frame(ts);
      let show = null;
      while (this.queue.length && this.queue[0].due <= ts + 1) show = this.queue.shift();
      if (show) {
        this.p.shown(show.due, show.ready, this.prev, ts);
        this.drawn.push({ i: show.i, lat: ts - show.cap - this.skew, ts, paced: true });
      }
      this.prev = ts;
      this.p.tune(ts);
      this.k++;
    }
    return this;
  }

  /** Latencies of the paced frames among the last `n` drawn. */
  last(n) { return this.drawn.slice(-n).filter((d) => d.paced).map((d) => d.lat); }
}

const distinct = (xs) => [...new Set(xs.map((x) => Math.round(x * 10) / 10))].sort((a, b) => a - b);

test('learns the first delay from the first frames (a quantile of decode − capture)', () => {
  const p = new Pacer({ warm: 20, q: 0.95 });
  new Sim(p).run(20, (i) => (i === 5 ? 20 : 8));
  assert.equal(p.delay, 20, 'sample ⌊0.95 · 20⌋ = 19 of the sorted 20: the slowest');
  assert.equal(p.due(1000, 1008), 1020);
});

test('comes down to the earliest refresh every frame makes, and stays there', () => {
  const p = new Pacer({ warm: 30 });
  const s = new Sim(p);
  // Learning sees a slow start (60 ms); then every frame is decoded 8 ms after capture.
  s.run(30, () => 60);
  s.run(30 * 6, () => 8);
  assert.deepEqual(distinct(s.last(30)), [21.7], 'at the floor within 5 s');
  s.run(30 * 120, () => 8);
  // Refreshes at capture + 5 and + 21.7: the first at or after capture + 8 is the second.
  const lats = s.last(30 * 30);
  assert.deepEqual(distinct(lats), [21.7], 'one latency: the floor, every frame');
  assert.equal(p.moves, 1, 'one move down from 60 ms, by as many slots as the frames had spare');
  const movesThen = p.moves;
  s.run(30 * 300, () => 8);
  assert.equal(p.moves, movesThen, 'no more moves once at the floor');
  assert.ok(p.late <= 30 * 2, `${p.late} late frames on the way (the one try below the floor)`);
});

test('a slow spell after learning does not hold the start high: the first move down judges the last 3 s', () => {
  const p = new Pacer({ warm: 30 });
  const s = new Sim(p);
  // The page's first seconds: frames decoded 30–45 ms after capture, for 4 s after learning (a
  // browser starting up); then 10–14 ms, with a keyframe 14 ms later every 2 s.
  let r = 1;
  const rnd = () => { r = (r * 16807) % 2147483647; return r / 2147483647; };
  const lat = (i) => (i < 150 ? 30 + 15 * rnd() : 10 + 4 * rnd() + (i % 60 === 0 ? 14 : 0));
  s.run(150, lat);
  const high = Math.min(...s.last(30));
  assert.ok(high > 40, `learned from the slow frames (${high} ms)`);
  s.run(150 + 30 * 4, lat);
  const lats = s.last(30);
  assert.ok(Math.max(...lats) < high - 16, `down within 4 s of the slow spell's end: ${distinct(lats)} (was ${high})`);
});

test('keeps due times mid-way between refreshes: capture-clock jitter does not split latency', () => {
  const p = new Pacer({ warm: 30 });
  // Capture stamps jitter by ±3 ms; decode takes 8 ms. Drawn on decode, frames whose capture +
  // 8 falls within 3 ms of a refresh would land on two different ones.
  let seed = 7;
  const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  const jit = Array.from({ length: 30 * 200 }, () => (rnd() - 0.5) * 6);
  const s = new Sim(p, { gridPhase: 8, capJitter: (i) => jit[i] });
  s.run(30 * 200, () => 8);
  const last = s.drawn.slice(-30 * 60);
  assert.ok(last.every((d) => d.paced), 'every frame paced');
  const gaps = distinct(last.slice(1).map((d, j) => (d.ts - last[j].ts) / p.refreshMs));
  assert.deepEqual(gaps, [2], 'each frame two refreshes after the one before (even cadence)');
  assert.ok(p.late < 30 * 10, `${p.late} late frames while it found its place`);
  // Captures on refreshes + 8 ms ± 3: due times mid-way between refreshes, not on one.
  const phase = (((p.delay - 8) % p.refreshMs) + p.refreshMs) % p.refreshMs;
  assert.ok(Math.abs(phase - p.refreshMs / 2) < p.refreshMs / 4, `due ${phase.toFixed(1)} ms after a refresh`);
});

test('keyframes late every 2 s do not hold every frame back', () => {
  const p = new Pacer({ warm: 30 });
  const s = new Sim(p);
  s.run(30, () => 40);
  // P frames decoded at +8, every 60th frame (an IDR) at +22: past the floor's refresh.
  s.run(30 * 200, (i) => (i % 60 === 0 ? 22 : 8));
  const last = s.drawn.slice(-30 * 60);
  const pLats = distinct(last.filter((d) => d.i % 60 !== 0).map((d) => d.lat));
  assert.deepEqual(pLats, [21.7], 'P frames at the floor');
  assert.deepEqual(distinct(last.filter((d) => d.i % 60 === 0).map((d) => d.lat)), [38.3], 'IDRs a refresh later');
});

test('a slower spell moves it later; when it passes it comes back down (no creep)', () => {
  const p = new Pacer({ warm: 30 });
  const s = new Sim(p);
  s.run(30 * 60, () => 9);
  const floor = distinct(s.last(300));
  assert.deepEqual(floor, [21.7]);
  const lateBefore = p.late;
  // 20 s of frames decoded at +25 ms, after the floor's refresh.
  s.run(30 * 80, () => 25);
  assert.deepEqual(distinct(s.last(300)), [38.3], 'a slot later, on time again');
  assert.ok(p.late - lateBefore < 30 * 3, `${p.late - lateBefore} late frames while it moved`);
  // Back to +9: within a minute it is at the floor again.
  s.run(30 * 140, () => 9);
  assert.deepEqual(distinct(s.last(600)), floor);
});

test('a machine that cannot hold the lower slot tries it rarer and rarer', () => {
  const p = new Pacer({ warm: 30 });
  const s = new Sim(p);
  // Decoded at +9, but every 40 s a 1.5-s spell at +25: each spell undoes the move down that a
  // clean 20 s allowed.
  const lat = (i) => (i > 300 && (i % 1200) < 45 ? 25 : 9);
  s.run(30 * 120, lat);
  const m2 = p.moves;
  s.run(30 * 600, lat);
  const late = p.late;
  assert.ok(p.wait >= 40000, `wait ${p.wait} ms grew`);
  assert.ok(p.moves - m2 <= 10, `${p.moves - m2} moves in the last 8 minutes`);
  s.run(30 * 900, lat);
  assert.ok(p.late - late < 0.05 * 30 * 300, `${p.late - late} late of ${30 * 300} in 5 minutes`);
});

for (const [dir, f] of [['earlier', 1 - 5e-4], ['later', 1 + 5e-4]]) {
  test(`follows a refresh grid drifting ${dir} against the camera (0.5 ms/s) without judder`, () => {
    const p = new Pacer({ warm: 30 });
    const R = (1000 / 60) * f;
    const s = new Sim(p, { R });
    s.run(30 * 20, (i) => 8 + (i % 5)); // decoded 8–12 ms after capture
    const late = p.late;
    s.run(30 * 320, (i) => 8 + (i % 5)); // 5 minutes: the grid moves 150 ms, 9 refreshes
    const last = s.drawn.slice(-30 * 300);
    assert.ok(last.every((d) => d.paced));
    assert.ok(p.late - late < 0.01 * last.length, `${p.late - late} late`);
    const even = last.slice(1).filter((d, j) => Math.abs(d.ts - last[j].ts - 2 * R) < 1).length;
    assert.ok(even > 0.98 * last.length, `${last.length - even} of ${last.length} frames not 2 refreshes after the one before`);
    const lats = last.map((d) => d.lat);
    const lo = Math.min(...lats);
    assert.ok(lo >= 12, `${lo}: never before decode`);
    assert.ok(Math.max(...lats) <= 12 + 2 * R + 2, `${Math.max(...lats)}: within a slot and a bit of the floor`);
  });
}

test('a constant clock offset between camera and viewer changes nothing but the numbers', () => {
  const a = new Pacer({ warm: 10 });
  const b = new Pacer({ warm: 10 });
  const lat = (i) => 9 + (i % 7);
  new Sim(a).run(30 * 30, lat);
  new Sim(b, { skew: 1.7e12 }).run(30 * 30, lat);
  assert.ok(Math.abs(b.delay - a.delay - 1.7e12) < 1e-3, `${b.delay - a.delay}`);
  assert.equal(b.late, a.late);
  assert.equal(b.moves, a.moves);
});

test('measures the refresh interval: on a 120 Hz display it moves by 8.3 ms', () => {
  const p = new Pacer({ warm: 30 });
  const s = new Sim(p, { R: 1000 / 120 });
  s.run(30, () => 60);
  s.run(30 * 120, () => 8);
  assert.ok(Math.abs(p.refreshMs - 1000 / 120) < 0.01, `refresh ${p.refreshMs}`);
  assert.deepEqual(distinct(s.last(30 * 30)), [13.3], 'the first 120 Hz refresh at or after +8');
});

test('waits for the sound in whole refreshes, and not at all when muted or already late enough', () => {
  const p = new Pacer({ warm: 10 });
  assert.equal(p.waitFor(120), 0, 'nothing to wait for before the delay is learned');
  new Sim(p).run(30 * 5, () => 20);
  const d = p.delay;
  assert.equal(p.waitFor(null), 0, 'muted');
  assert.equal(p.waitFor(d - 5), 0, 'the picture is already later than the sound needs');
  assert.equal(p.waitFor(d), 0);
  // 1 ms more than D needs a whole refresh: the frames keep their phase on the grid.
  assert.ok(Math.abs(p.waitFor(d + 1) - p.refreshMs) < 1e-9, `${p.waitFor(d + 1)}`);
  assert.ok(Math.abs(p.waitFor(d + 40) - 3 * p.refreshMs) < 1e-9, `${p.waitFor(d + 40)}`);
});
