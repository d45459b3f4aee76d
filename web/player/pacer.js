// Frame pacing for the WebCodecs player: when each decoded frame goes on screen (pure logic;
// tests/browser/pacer.test.mjs).
//
// Drawing each frame the moment it is decoded puts it on whichever display refresh comes next,
// and a few ms of arrival jitter near a refresh boundary send consecutive frames to different
// ones: latency jumps by a refresh (16.7 ms at 60 Hz) from frame to frame and motion judders
// (frames held for 1 or 3 refreshes instead of 2). Pacing gives each frame a due time, its
// capture time + a delay D, and the player draws it on the first refresh at or after that. All
// frames decoded before their due time then sit at the same phase against the refresh grid:
// constant latency, even cadence. A frame not decoded by the first refresh at or after its due
// time is late (drawn on a later one).
//
// D starts at the 90th percentile of (decoded − capture) over the first `warm` frames, then
// descends `stepMs` a second while at most 2 % of the last 3 s were late (a keyframe every 2 s
// takes longer to encode: letting it be late costs one frame a refresh, waiting for it would
// cost every frame); past that it backs off 2 steps and holds still for `holdMs`, so it does not
// wander during a viewing.
// While holding, more than 4 % late over 3 s moves it one refresh (one slot) later and restarts
// the hold.
// Only differences of (now − capture) matter: the camera's and the viewer's clocks may differ by
// any constant.

export class Pacer {
  /**
   * @param {object} [o] all times in ms
   * @param {number} [o.refreshMs] display refresh interval
   * @param {number} [o.warm] frames measured before pacing starts
   * @param {number} [o.q] quantile of (decoded − capture) the first delay covers
   * @param {number} [o.stepMs] descent per second
   * @param {number} [o.holdMs] how long D stays put once the descent found late frames
   */
  constructor({ refreshMs = 1000 / 60, warm = 60, q = 0.9, stepMs = 4, holdMs = 600000 } = {}) {
    Object.assign(this, { refreshMs, warm, q, stepMs, holdMs });
    this.reset();
  }

  reset() {
    this.delay = null;   // D: due = capture + D
    this.learn = [];     // (decoded − capture) while learning
    this.recent = [];    // [{t, late}] of decoded frames
    this.holdUntil = -Infinity;
    this.tunedAt = -Infinity;
    this.late = 0;       // frames not decoded by their refresh, in total
  }

  /**
   * A frame captured at `capMs` was decoded at `nowMs`. Returns its due time in the `nowMs`
   * timeline, or null while learning (draw it at once).
   */
  due(capMs, nowMs) {
    if (this.delay == null) {
      this.learn.push(nowMs - capMs);
      if (this.learn.length < this.warm) return null;
      const s = this.learn.sort((a, b) => a - b);
      this.delay = s[Math.min(s.length - 1, Math.floor(s.length * this.q))];
      this.learn = [];
      return null;
    }
    return capMs + this.delay;
  }

  /**
   * The frame due at `dueMs`, decoded at `readyMs`, is drawn now; `prevFrameMs` is the animation
   * frame before this one. It was late if that frame was already at or past its due time and it
   * was not decoded yet (a skipped animation frame is the page's fault, not the delay's).
   */
  shown(dueMs, readyMs, prevFrameMs) {
    const late = prevFrameMs >= dueMs - 1 && readyMs > prevFrameMs;
    if (late) this.late++;
    this.recent.push({ t: readyMs, late });
    while (this.recent.length && readyMs - this.recent[0].t > 3000) this.recent.shift();
  }

  /** Call about once a second. Returns the change made to D (ms), 0 if none. */
  tune(nowMs) {
    if (this.delay == null || nowMs - this.tunedAt < 1000) return 0;
    this.tunedAt = nowMs;
    const r = this.recent.filter((x) => nowMs - x.t <= 3000);
    if (r.length < 60) return 0;
    const late = r.filter((x) => x.late).length;
    let change = 0;
    if (nowMs < this.holdUntil) {
      if (late > 0.04 * r.length) change = this.refreshMs;
    } else if (late <= 0.02 * r.length) {
      change = -this.stepMs;
    } else {
      change = 2 * this.stepMs;
    }
    if (change > 0) {
      this.holdUntil = nowMs + this.holdMs;
      this.recent = []; // judge the new delay on its own frames
    }
    this.delay += change;
    return change;
  }
}
