// Frame pacing for the WebCodecs player: when each decoded frame goes on screen (pure logic;
// tests/browser/pacer.test.mjs).
//
// Drawing each frame the moment it is decoded puts it on whichever display refresh comes next,
// and a few ms of arrival jitter near a refresh boundary send consecutive frames to different
// ones: latency jumps by a refresh (16.7 ms at 60 Hz) from frame to frame and motion judders
// (frames held for 1 or 3 refreshes instead of 2). Pacing gives each frame a due time, its
// capture time + a delay D, and the player draws it on the first refresh at or after that. All
// frames decoded before their due time then sit at the same phase against the refresh grid:
// constant latency, even cadence. A frame not decoded by that refresh is late (drawn on a later
// one, a refresh or more behind the others).
//
// Only which refresh a due time falls before matters, so D moves in whole refreshes ("slots"),
// and its phase is kept mid-way between two refreshes, where the capture clock's jitter cannot
// push due times across one:
//   - start: D = the `q` quantile of (decoded − capture) over the first `warm` frames (the first
//     move down may follow 2 s later: those first frames are often slow ones);
//   - up a slot when more than `upShare` of the last 10 s were late or decoded less than
//     `marginMs` before their refresh, or a quarter of the last 2 s were late;
//   - down when, since the last move (at least `wait` ago; over the last 10 s, the first move
//     over the last 3 s), at most `downShare` of the frames would have been late a refresh
//     earlier (not decoded `marginMs` before the refresh before theirs); as many slots at once
//     as that holds for.
//     A keyframe every 2 s takes longer to encode; `downShare` lets it be late (one frame a
//     refresh behind) rather than delay every frame for it;
//   - a move down that has to be undone within `undoMs` doubles `wait` (up to `maxWaitMs`); one
//     that holds for `undoMs` resets it. So a machine that cannot hold the lower slot tries it
//     rarer and rarer, and one that got faster is followed down: no creep either way.
// The refresh grid drifts against the camera's clock (0.04 ms/s in headless Chromium here; a
// 59.94 Hz display against a 30.000 fps camera, 1 ms/s): keeping the phase follows it, and the
// latency saws between the floor and a refresh above it, moving up a slot before frames get late
// and down when they have a slot to spare.
// Only differences of (now − capture) matter: the camera's and the viewer's clocks may differ by
// any constant.

export class Pacer {
  /**
   * @param {object} [o] all times in ms, shares as fractions of frames
   * @param {number} [o.refreshMs] display refresh interval until measured (`frame()`)
   * @param {number} [o.warm] frames measured before pacing starts
   * @param {number} [o.q] quantile of (decoded − capture) the first delay covers
   * @param {number} [o.upShare] late share of the last 10 s that moves D a slot later
   * @param {number} [o.downShare] would-be-late share that still lets D move a slot earlier
   * @param {number} [o.waitMs] least time between moves down (and after a move up)
   * @param {number} [o.maxWaitMs] cap of the growing wait
   * @param {number} [o.undoMs] a move down undone within this doubles the wait
   * @param {number} [o.marginMs] a frame decoded less than this before its refresh counts as
   *   (nearly) late for moving up, and frames need a slot plus this to spare for moving down
   */
  constructor({
    refreshMs = 1000 / 60, warm = 60, q = 0.9, upShare = 0.06, downShare = 0.04,
    waitMs = 5000, maxWaitMs = 160000, undoMs = 30000, marginMs = 2,
  } = {}) {
    Object.assign(this, { refreshMs, warm, q, upShare, downShare, waitMs, maxWaitMs, undoMs, marginMs });
    this.reset();
  }

  reset() {
    this.delay = null;   // D: due = capture + D
    this.learn = [];     // (decoded − capture) while learning
    this.recent = [];    // [{t, late, near, spare, phase}] of drawn frames, the last 20 s
    this.wait = this.waitMs;
    this.movedAt = -Infinity;  // last change of D (the `recent` window for moves down starts here)
    this.trialAt = null;       // a move down not yet held for undoMs
    this.tunedAt = -Infinity;
    this.phasedAt = -Infinity; // last phase correction (its frames are not judged again)
    this.intervals = [];       // recent animation-frame intervals, for refreshMs
    this.lastTs = null;
    this.late = 0;       // frames not decoded by their refresh, in total
    this.moves = 0;      // changes of D by a slot, in total
  }

  /**
   * How much longer than D a frame waits so that its sound (which needs `needMs` from capture
   * to being heard; null when muted) is heard with it: 0 when D covers it, else whole
   * refreshes, so the frames keep the phase the pacer chose.
   */
  waitFor(needMs) {
    if (needMs == null || this.delay == null) return 0;
    const r = this.refreshMs;
    return Math.max(0, Math.ceil((needMs - this.delay) / r) * r);
  }

  /** Every animation frame's timestamp: the refresh interval (60 Hz is not universal; tune()). */
  frame(ts) {
    const d = this.lastTs == null ? 0 : ts - this.lastTs;
    if (d > 2 && d < 60) {
      this.intervals.push(d);
      if (this.intervals.length > 120) this.intervals.shift();
    }
    this.lastTs = ts;
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
      this.movedAt = nowMs;
      return null;
    }
    return capMs + this.delay;
  }

  /**
   * The frame due at `dueMs`, decoded at `readyMs`, is drawn in the animation frame `frameMs`;
   * `prevFrameMs` is the one before. It was late if the previous frame was already at or past
   * its due time and it was not decoded yet (a skipped animation frame is the page's fault, not
   * the delay's).
   */
  shown(dueMs, readyMs, prevFrameMs, frameMs) {
    const late = prevFrameMs >= dueMs - 1 && readyMs > prevFrameMs;
    if (late) this.late++;
    // Near: on time by less than `marginMs` (the refresh grid drifts against the camera's clock,
    // so a slot that frames barely make will soon make them late).
    const near = late || readyMs > frameMs - this.marginMs;
    // Spare: how many refreshes earlier it could have been drawn, with `marginMs` to spare.
    const spare = late ? 0 : Math.max(0, Math.floor((frameMs - readyMs - this.marginMs) / this.refreshMs));
    // Where the due time sat before the refresh that drew it (on-time frames of an unbroken
    // animation-frame sequence only).
    const phase = !late && frameMs - prevFrameMs < 1.5 * this.refreshMs ? frameMs - dueMs : null;
    this.recent.push({ t: frameMs, late, near, spare, phase });
    while (this.recent.length && frameMs - this.recent[0].t > 20000) this.recent.shift();
  }

  /** Call about once a second. Returns the change made to D (ms), 0 if none. */
  tune(nowMs) {
    if (this.delay == null || nowMs - this.tunedAt < 1000) return 0;
    this.tunedAt = nowMs;
    if (this.intervals.length >= 30) this.refreshMs = median(this.intervals);
    const R = this.refreshMs;
    const since = (ms) => this.recent.filter((x) => x.t > nowMs - ms && x.t > this.movedAt);
    const share = (xs, f) => xs.filter(f).length / xs.length;

    let change = 0;
    const long = since(10000);
    const short = since(2000);
    if ((long.length >= 150 && share(long, (x) => x.near) > this.upShare)
        || (short.length >= 30 && share(short, (x) => x.late) > 0.25)) {
      change = R;
      if (this.trialAt != null) this.wait = Math.min(this.maxWaitMs, 2 * this.wait); // undone
      this.trialAt = null;
    } else {
      if (this.trialAt != null && nowMs - this.trialAt >= this.undoMs) {
        this.wait = this.waitMs; // the last move down held
        this.trialAt = null;
      }
      // As many slots as all but `downShare` of the frames had to spare. The first move down
      // judges only the last 3 s: the frames learned from are often a slow spell of the page's
      // start, and over a longer window it held D two slots high for 15 s or more
      // (bench/README.md, session 8). Later ones judge 10 s (5 keyframes at one per 2 s).
      const [minN, wait, span] = this.moves ? [150, this.wait, 10000] : [60, 2000, 3000];
      const all = since(span);
      const slots = all.length >= minN ? quantile(all.map((x) => x.spare), this.downShare) : 0;
      if (nowMs - this.movedAt >= wait && slots > 0) {
        change = -slots * R;
        this.trialAt = nowMs;
      }
    }
    if (change) {
      this.delay += change;
      this.movedAt = nowMs;
      this.moves++;
      return change;
    }
    // Keep due times mid-way between refreshes. Phases are circular (0 and R are the same place,
    // on a refresh): due times straddling a refresh average to it and move mid-way to one side.
    // Normally within their slot (nothing on screen changes); but when the grid drifts, due times
    // early in their slot belong a slot earlier if the frames have it to spare, and due times
    // late in it a slot later if the frames come near their refresh.
    const recent = since(3000).filter((x) => x.t > this.phasedAt);
    const phases = recent.filter((x) => x.phase != null).map((x) => x.phase);
    if (phases.length < 30) return 0;
    let c = 0;
    let s = 0;
    for (const ph of phases) {
      c += Math.cos((2 * Math.PI * ph) / R);
      s += Math.sin((2 * Math.PI * ph) / R);
    }
    // Only when the phases agree: with a frame rate that does not divide the refresh rate (30 fps
    // at 50 or 144 Hz) they spread round the circle and there is no one phase to keep.
    if (Math.hypot(c, s) < 0.8 * phases.length) return 0;
    const at = (((Math.atan2(s, c) / (2 * Math.PI)) * R) + R) % R; // mean phase, [0, R)
    let off = at - R / 2;
    if (Math.abs(off) <= R / 4) return 0;
    if (off > 0 && share(recent, (x) => x.spare < 1) <= this.downShare) off -= R;
    else if (off < 0 && share(recent, (x) => x.near) > this.downShare) off += R;
    this.delay += off;
    this.phasedAt = nowMs;
    if (Math.abs(off) > R / 2) { // changed slot
      this.movedAt = nowMs;
      this.moves++;
      if (off < 0) this.trialAt = nowMs;
    }
    return off;
  }
}

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))];
}

const median = (xs) => quantile(xs, 0.5);
