// Live low-delay player: fMP4 fragments from /ws/fmp4 appended to a (Managed)MediaSource.
//
// Protocol: a text {"type":"init",codec,width,height,fps} message, then a binary init
// segment, then one binary message per frame ([prft] moof mdat). A new "init" text message
// may arrive at any time (resolution change): the MediaSource is rebuilt.

import { findBox, fragmentTrack, parseFragment, parseTimescale, videoOnlyInit } from './boxes.js';
import { AudioOut } from './audio.js';
import { Pacer } from './pacer.js';
import { Backoff, RateMeter, closeSocket, connectSocket, liveVideo, scheduleReconnect, wsUrl } from './util.js';

const MS = globalThis.ManagedMediaSource || globalThis.MediaSource;

// Latency tuning (seconds). "lag" = buffered end − currentTime: media the element holds but has
// not shown yet. It swings by one frame interval: largest right after a fragment is appended,
// smallest just before the next one arrives. That smallest value is the real safety margin
// (the rest is the newest frame's own duration), so the controller steers the *minimum* lag seen
// at fragment arrivals over the last second towards MARGIN: faster playback while above it,
// 1.0x once there. Tuned with bench/latency (see its README): 35/10 ms gave a 5-minute p50 of
// 43 ms, p95 64 ms at 29.8 fps; 25/15 ms gave p50 17–41 ms from run to run with p95/p50 ≈ 1.7 and
// more dropped frames. A <video> frame waits for the next vsync (0–16.7 ms, its phase drifting
// against the camera's clock), so a steady p95 needs a margin above that wait, not a smaller one.
// ?mse_tune=MARGIN,SLACK[,RATE] overrides them for measurements.
const TUNE = (new URLSearchParams(globalThis.location?.search || '').get('mse_tune') || '')
  .split(',').map(Number).filter((x) => Number.isFinite(x) && x >= 0);
const MARGIN = TUNE[0] ?? 0.035;  // wanted minimum lag: slack for arrival and decode jitter
const SLACK = TUNE[1] ?? 0.010;   // speed up only when the margin is this much above MARGIN
const LAG_WINDOW_MS = 1000;       // the minimum is taken over this window
// playbackRate while the margin is above MARGIN + SLACK. Gentle on purpose: at 1.05 the catch-up
// overshot into stalls (p95 74 ms vs 58 at 1.02, same run conditions); 1.02 sheds 20 ms a second.
const RATE_CATCH_UP = TUNE[2] ?? 1.02;
const RATE_FAST = 1.25;           // … and while it is more than CATCH_UP_FAST
const CATCH_UP_FAST = 0.25;
const LAG_JUMP = 1.5;      // above this, jump to the live edge
const LAG_START_JUMP = 0.25; // the same during the first 2 s (the GOP burst of a new connection)
const KEEP_BEHIND = 10;    // keep this much played media; older is removed
const STALL_S = 0.4;       // currentTime frozen this long with data ahead: jump
const SILENCE_S = 5;       // no message this long on an open socket: reconnect
const MAX_QUEUE = 300;     // fragments waiting for the SourceBuffer before we give up
const HIDDEN_S = 10;       // page hidden this long: disconnect (saves a phone's data and battery)
// Paced mode (the default where requestVideoFrameCallback exists; ?render=immediate for the
// controller above). The element plays faster than real time, so it always waits at the end of
// what it holds and shows a frame as soon as it is appended: the player decides when each frame
// goes on screen by when it appends it, on the animation frame pacer.js gives it (the same
// pacing as the WebCodecs player: constant latency, even cadence).
// Chromium, measured with the bench's probe on the page (/work/exp/msepaced.mjs in session 8):
//   - a frame appended to a waiting element ('waiting', readyState HAVE_CURRENT_DATA) is on
//     screen ~2.5 ms later (rVFC presentationTime);
//   - one appended while the element still plays the last frame waits for its clock and goes
//     up a refresh late. At 1.5x a frame lasts 22 ms of the 33 between appends, and Chromium
//     notices it ran dry on the refresh we append on: a race, 5-10 % of frames lost it. So a
//     due frame that finds the element still playing waits for 'waiting' (at most GATE_MS):
//     none late in 400 frames;
//   - faster does not help: from 2.5x a frame can end before the next refresh and is never
//     shown (11 % of frames at 2.5x, 26 % at 3x); slower than ~1.2x, frames overlap.
const SQ = new URLSearchParams(globalThis.location?.search || '');
const PACED_RATE = Number(SQ.get('mse_rate')) || 1.5;
const GATE_MS = Number(SQ.get('mse_gate') ?? 8);
const LEARN_AFTER_MS = 2000; // the start-up burst's tail is not learned from (as WebCodecs)
// A paced frame should reach the screen (rVFC presentationTime) within a refresh of its append.
// If more than SLIP_SHARE of SLIP_N do not (after the first SLIP_SKIP, which may still be
// catching up with the start-up burst), this browser does not show a waiting element's frames
// at once: fall back to the immediate controller.
const SLIP_SKIP = 120;
const SLIP_N = 150;
const SLIP_SHARE = 0.25;

export class MsePlayer {
  static id = 'mse';
  static label = 'MSE';
  static supported(codec = 'avc1.42c01f') {
    return !!MS && MS.isTypeSupported(`video/mp4; codecs="${codec}"`);
  }

  /** @param {{onState?: (s: {kind: string, text: string}) => void, url?: string}} opts */
  constructor(opts = {}) {
    this.onState = opts.onState || (() => {});
    // Video only (one SourceBuffer with the video codec) until this player plays audio too.
    // Every track where the browser decodes audio (AudioDecoder, played apart from the
    // <video>: audio.js); else the video alone.
    this.audio = AudioOut.supported() ? new AudioOut({ delayMs: () => this._delayMs() }) : null;
    this.url = opts.url || wsUrl(this.audio ? 'ws/fmp4' : 'ws/fmp4?tracks=video');
    this.backoff = new Backoff();
    this.bytes = new RateMeter();
    this.frames = new RateMeter();
    this.video = null;
    this.ws = null;
    this.ms = null;
    this.sb = null;
    this.objectUrl = null;
    this.queue = [];
    this.info = null;        // last init JSON
    this.timescale = 1e6; // pinholed's track timescale (µs), until the init says
    this.prft = [];          // [{t: media seconds, wallMs}] ascending
    this.nextDts = null;     // where the next fragment goes on the (contiguous) media timeline
    this.lagSamples = [];    // [{t, lag}] at fragment arrivals, last LAG_WINDOW_MS
    this.state = { kind: 'idle', text: '' };
    this.timers = new Set();
    this.stopped = true;
    this.presented = 0;
    this.lastMsgAt = 0;
    this.lastCt = -1;
    this.lastCtChange = 0;
    this.jumps = 0;
    this.needSeek = true;
    const r = opts.render || SQ.get('render');
    const rvfc = !!globalThis.HTMLVideoElement?.prototype?.requestVideoFrameCallback;
    this.render = r === 'immediate' || !rvfc ? 'immediate' : 'paced';
    this.pacer = new Pacer();
    this.held = [];          // paced: fragments waiting for their animation frame [{buf, due, pacerDue, wait, ready, t}]
    this.gate = [];          // paced: due fragments waiting for the element to run dry
    this.gateTimer = 0;
    this.sent = [];          // paced: appended, not yet seen on screen [{t: media s, frame: rAF ts}]
    this.onTime = 0;         // paced frames on screen within a refresh of their append …
    this.slipped = 0;        // … and later than that (not counting the first SLIP_SKIP seen)
    this.seen = 0;
    this.fellBack = null;    // why paced mode was given up
    this.raf = 0;
    this.lastFrame = null;
    this.shown = null;       // the newest frame on screen: {mediaTime, at: presentationTime}
  }

  start(container) {
    this.stopped = false;
    const v = liveVideo();
    v.setAttribute('webkit-playsinline', '');
    v.disablePictureInPicture = false;
    if (globalThis.ManagedMediaSource) v.disableRemotePlayback = true; // required by Safari's MMS
    v.addEventListener('error', () => this._fail(`video error ${v.error?.code ?? ''} ${v.error?.message ?? ''}`));
    v.addEventListener('waiting', () => this._openGate()); // ran dry: paced frames go in now
    this.video = v;
    container.appendChild(v);
    this._countFrames();
    this._every(250, () => this._tick());
    this._onVisibility = () => this._visibility();
    document.addEventListener('visibilitychange', this._onVisibility);
    this._connect();
  }

  /** The picture's capture-to-screen delay now (ms), which the sound is played at. */
  _delayMs() {
    // Paced: the schedule frames are appended on (+ the wait for the sound), as in the WebCodecs
    // player; a frame is on screen ~2.5 ms after its append. The measured figure below moves
    // with every frame that reaches the screen a refresh late, and the sound would move with it.
    if (this.render === 'paced' && this.pacer.delay != null) {
      return this.pacer.delay + this.pacer.waitFor(this.audio?.needMs);
    }
    const d = this.stats().delay;
    return d != null ? d * 1000 : null;
  }

  /** Sound: whether this stream has any, its level (dBFS), muted or not. */
  audioState() {
    return this.audio?.active ? { muted: this.audio.muted, level: this.audio.level } : null;
  }

  setMuted(muted) {
    if (!this.audio) return;
    if (muted) this.audio.mute(); else this.audio.unmute();
  }

  stop() {
    this.audio?.close();
    this.stopped = true;
    for (const t of this.timers) { clearTimeout(t); clearInterval(t); }
    this.timers.clear();
    document.removeEventListener('visibilitychange', this._onVisibility);
    this._closeSocket();
    this._detachMedia();
    this.video?.remove();
    this.video = null;
    this._setState('idle', '');
  }

  stats() {
    const v = this.video;
    const out = {
      player: 'mse',
      state: this.state.kind,
      width: v?.videoWidth || this.info?.width || 0,
      height: v?.videoHeight || this.info?.height || 0,
      codec: this.info?.codec || null,
      fps: this.frames.rate(),
      bitrate: this.bytes.rate() * 8,
      delay: null,
      delaySource: null,
      buffer: null,
      playbackRate: v?.playbackRate ?? 1,
      decodedFrames: 0,
      droppedFrames: 0,
      jumps: this.jumps,
      currentTime: v?.currentTime ?? 0,
      render: this.render,
      lateFrames: this.render === 'paced' ? this.pacer.late : null, // arrived after their refresh
      slippedFrames: this.slipped, // appended in time, on screen a refresh or more later
      pacingOff: this.fellBack,
    };
    if (!v) return out;
    const q = v.getVideoPlaybackQuality?.();
    if (q) { out.decodedFrames = q.totalVideoFrames; out.droppedFrames = q.droppedVideoFrames; }
    // Paced, the element plays each frame fast and Chromium counts nearly every one as dropped,
    // though each was on screen: count the frames that never were.
    if (q && this.render === 'paced' && this.presented) out.droppedFrames = Math.max(0, q.totalVideoFrames - this.presented);
    const b = v.buffered;
    if (b.length) out.buffer = Math.max(0, b.end(b.length - 1) - v.currentTime);
    // The newest frame on screen, how old it was when it went there; else the playhead's age.
    const sh = this.shown && performance.now() - this.shown.at < 1000 ? this.shown : null;
    const shownWall = sh && this._wallclockAt(sh.mediaTime);
    const wall = this._wallclockAt(v.currentTime);
    if (shownWall != null) { out.delay = (sh.at + performance.timeOrigin - shownWall) / 1000; out.delaySource = 'prft'; }
    else if (wall != null) { out.delay = (Date.now() - wall) / 1000; out.delaySource = 'prft'; }
    else if (out.buffer != null) { out.delay = out.buffer; out.delaySource = 'buffer'; }
    return out;
  }

  // ---- connection -------------------------------------------------------------------------

  _connect() {
    this.awaitInitSegment = false; // a new socket starts with an init message
    connectSocket(this);
  }

  /** Hidden for a while: stop streaming. Visible again: reconnect at once, at the live edge. */
  _visibility() {
    clearTimeout(this.hiddenTimer);
    if (document.hidden) {
      this._flushHeld();
      this.hiddenTimer = this._after(HIDDEN_S * 1000, () => {
        clearTimeout(this.retryTimer);
        clearInterval(this.countdown);
        this._closeSocket();
        this._detachMedia();
        this._setState('paused', 'paused while hidden');
      });
    } else if (this.state.kind === 'paused') {
      this.backoff.reset();
      this._connect();
    }
  }

  _closeSocket() {
    closeSocket(this);
  }

  /** Tear down the socket and try again later (the last frame stays on screen meanwhile). */
  _retry(reason) {
    if (this.stopped) return;
    this._closeSocket();
    scheduleReconnect(this, reason);
  }

  /** Something is wrong with the media pipeline: rebuild everything via a reconnect. */
  _fail(reason) {
    if (this.stopped) return;
    console.warn('[pinhole mse]', reason);
    this._detachMedia();
    this._retry(reason);
  }

  _onText(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if (msg.type !== 'init') return;
    this.info = msg;
    this.awaitInitSegment = true;
    this._attachMedia(msg.codec || 'avc1.42c01f');
  }

  _onBinary(buf) {
    this.bytes.add(buf.byteLength);
    if (!this.ms) return; // media before any init message: ignore
    if (this.awaitInitSegment) {
      this.awaitInitSegment = false;
      this.timescale = parseTimescale(buf) || 1e6;
      // The SourceBuffer is for the video codec: the audio track goes to audio.js.
      if (this.audio?.setInit(buf) || this.info?.tracks?.length > 1) buf = videoOnlyInit(buf);
      this._enqueue({ kind: 'append', data: buf });
      return;
    }
    if ((fragmentTrack(buf) ?? 1) !== 1) { // another track: the audio
      this.audio?.push(buf);
      return;
    }
    this._sampleLag();
    const shift = this._restamp(buf);
    const { prft } = parseFragment(buf);
    if (prft) {
      this.prft.push({ t: (prft.mediaTime + shift) / this.timescale, wallMs: prft.wallMs });
      if (this.prft.length > 900) this.prft.splice(0, this.prft.length - 600);
    }
    if (this.render === 'paced' && prft) this._hold(buf, prft.wallMs, (prft.mediaTime + shift) / this.timescale);
    else this._enqueue({ kind: 'append', data: buf });
  }

  // ---- paced mode -----------------------------------------------------------------------

  /**
   * A fragment of the frame captured at `capMs` (media time `t` s): append it now (the first
   * 2 s, while learning, while hidden) or hold it for its animation frame.
   */
  _hold(buf, capMs, t) {
    const now = performance.now();
    const ready = now + performance.timeOrigin; // Unix ms, the capture times' timeline
    const learnable = !document.hidden && !this.needSeek && now - this.attachedAt > LEARN_AFTER_MS;
    const due = learnable ? this.pacer.due(capMs, ready) : null;
    if (due == null) {
      this._flushHeld(); // in order
      this._enqueue({ kind: 'append', data: buf });
      return;
    }
    // Held longer while the sound needs longer than the picture (unmuted), as in the WebCodecs
    // player: otherwise the sound, which cannot be early, is heard that much after the picture.
    const wait = this.pacer.waitFor(this.audio?.needMs);
    this.held.push({ buf, due: due + wait, pacerDue: due, wait, ready, t });
    this._pace();
  }

  /** Append every held fragment now (hidden page: no animation frames). */
  _flushHeld() {
    this._openGate();
    for (const h of this.held.splice(0)) this._enqueue({ kind: 'append', data: h.buf });
  }

  _openGate() {
    clearTimeout(this.gateTimer);
    this.gateTimer = 0;
    for (const buf of this.gate.splice(0)) this._enqueue({ kind: 'append', data: buf });
  }

  /**
   * Each animation frame appends the frames due by it (all of them: a fragment cannot be
   * skipped, the next one is decoded from it); they go on screen before the next one.
   */
  _pace() {
    if (this.raf || this.stopped || this.render !== 'paced') return;
    this.raf = requestAnimationFrame((ts) => {
      this.raf = 0;
      this.pacer.frame(ts);
      const frame = ts + performance.timeOrigin;
      const v = this.video;
      const playing = GATE_MS > 0 && !v.paused && v.readyState > v.HAVE_CURRENT_DATA;
      while (this.held.length && this.held[0].due <= frame + 1) {
        const h = this.held.shift();
        // The pacer judges its own schedule: the wait for the sound is not its lateness.
        this.pacer.shown(h.pacerDue, h.ready + h.wait, this.lastFrame ?? frame - this.pacer.refreshMs, frame);
        this.sent.push({ t: h.t, frame: ts });
        if (this.sent.length > 60) this.sent.shift();
        this.gate.push(h.buf);
      }
      // Still playing the last frame (it has not run dry yet): a frame appended now would wait
      // for the element's clock and go on screen a refresh late. Append when it runs dry
      // ('waiting'), at most GATE_MS from now.
      if (this.gate.length && !playing) this._openGate();
      else if (this.gate.length && !this.gateTimer) this.gateTimer = setTimeout(() => this._openGate(), GATE_MS);
      this.lastFrame = frame;
      if (this.ms) this._pace();
    });
  }

  /** A paced frame on screen: within a refresh of its append? (Else: give pacing up.) */
  _presented(meta) {
    const i = this.sent.findIndex((x) => Math.abs(x.t - meta.mediaTime) < 0.002);
    if (i < 0) return;
    const late = meta.presentationTime - this.sent[i].frame > this.pacer.refreshMs;
    this.sent.splice(0, i + 1);
    if (++this.seen <= SLIP_SKIP) return;
    if (late) this.slipped++;
    else this.onTime++;
    const n = this.onTime + this.slipped;
    if (n === SLIP_N && this.slipped > SLIP_SHARE * n) {
      this.fellBack = `${this.slipped} of ${n} paced frames reached the screen a refresh late`;
      console.warn('[pinhole mse] pacing off:', this.fellBack);
      this.render = 'immediate';
      this._flushHeld();
    }
  }

  /**
   * Keep the media timeline contiguous: move this fragment to where the previous one ended
   * (rewriting its tfdt in place) and return the shift, in timescale units. Decode times come
   * from the capture clock, so a skipped or late frame would leave a gap in the buffered range,
   * and Chromium stops at a gap until we seek (a seek re-decodes from the keyframe: a visible
   * hiccup). Contiguous, a late frame only makes the element wait for it. Like
   * SourceBuffer mode "sequence", but we know the shift, so the prft mapping stays exact.
   */
  _restamp(buf) {
    const dv = new DataView(buf);
    const moof = findBox(dv, 'moof');
    const end = moof ? moof.start + moof.size : 0;
    const tfdt = moof && findBox(dv, 'tfdt', moof.body, end);
    const trun = moof && findBox(dv, 'trun', moof.body, end);
    const tfhd = moof && findBox(dv, 'tfhd', moof.body, end);
    if (!tfdt || !trun) { this.nextDts = null; return 0; }
    // Total duration of the fragment's samples: per-sample durations, else tfhd's default.
    const rf = dv.getUint32(trun.body) & 0xffffff;
    const count = dv.getUint32(trun.body + 4);
    let total = 0;
    if (rf & 0x100) {
      let off = trun.body + 8 + (rf & 0x1 ? 4 : 0) + (rf & 0x4 ? 4 : 0);
      const entry = 4 * [0x100, 0x200, 0x400, 0x800].filter((f) => rf & f).length;
      for (let i = 0; i < count && off + 4 <= end; i++, off += entry) total += dv.getUint32(off);
    } else if (tfhd && dv.getUint32(tfhd.body) & 0x8) {
      const hf = dv.getUint32(tfhd.body);
      total = count * dv.getUint32(tfhd.body + 8 + (hf & 0x1 ? 8 : 0) + (hf & 0x2 ? 4 : 0));
    }
    const v1 = dv.getUint8(tfdt.body) === 1;
    const orig = v1 ? dv.getUint32(tfdt.body + 4) * 4294967296 + dv.getUint32(tfdt.body + 8) : dv.getUint32(tfdt.body + 4);
    const want = this.nextDts ?? orig;
    if (!total || (!v1 && want > 0xffffffff)) { this.nextDts = null; return 0; }
    if (v1) {
      dv.setUint32(tfdt.body + 4, Math.floor(want / 4294967296));
      dv.setUint32(tfdt.body + 8, want % 4294967296);
    } else {
      dv.setUint32(tfdt.body + 4, want);
    }
    this.nextDts = want + total;
    return want - orig;
  }

  // ---- MediaSource ----------------------------------------------------------------------

  _attachMedia(codec) {
    this._detachMedia();
    const v = this.video;
    const mime = `video/mp4; codecs="${codec}"`;
    if (!MS || !MS.isTypeSupported(mime)) {
      this._setState('error', `this browser cannot play ${codec}`);
      this._closeSocket();
      return;
    }
    const ms = new MS();
    this.ms = ms;
    this.queue = [];
    this.prft = [];
    this.nextDts = null;
    this.lagSamples = [];
    this.held = [];
    this.sent = [];
    this.lastFrame = null;
    this.shown = null;
    this.seen = 0;
    this.onTime = 0;
    this.slipped = 0;
    this.pacer.reset();
    this.needSeek = true;
    this.attachedAt = performance.now();
    this.playingSince = 0;
    ms.addEventListener('sourceopen', () => {
      if (ms !== this.ms) return;
      try {
        // A live stream (infinite duration): Chromium then renders in low-delay mode.
        try { ms.duration = Infinity; } catch { /* keep the default */ }
        const sb = ms.addSourceBuffer(mime);
        sb.mode = 'segments';
        sb.addEventListener('updateend', () => { if (sb === this.sb) this._onUpdateEnd(); });
        sb.addEventListener('error', () => { if (sb === this.sb) this._fail('SourceBuffer error'); });
        this.sb = sb;
        this._pump();
      } catch (e) {
        this._fail(`addSourceBuffer: ${e.message}`);
      }
    }, { once: true });
    this.objectUrl = URL.createObjectURL(ms);
    v.src = this.objectUrl;
    v.playbackRate = 1;
  }

  _detachMedia() {
    const v = this.video;
    this.sb = null;
    this.queue = [];
    this.held = [];
    this.gate = [];
    clearTimeout(this.gateTimer);
    this.gateTimer = 0;
    if (this.raf) { cancelAnimationFrame(this.raf); this.raf = 0; }
    if (this.ms) {
      const ms = this.ms;
      this.ms = null;
      try { if (ms.readyState === 'open') ms.endOfStream(); } catch { /* closing anyway */ }
    }
    if (this.objectUrl) {
      URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = null;
      if (v) { v.removeAttribute('src'); v.load(); }
    }
  }

  _enqueue(op) {
    this.queue.push(op);
    if (this.queue.length > MAX_QUEUE) { this._fail('SourceBuffer is not keeping up'); return; }
    this._pump();
  }

  _pump() {
    const sb = this.sb;
    if (!sb || sb.updating || !this.queue.length || this.ms?.readyState !== 'open') return;
    const op = this.queue[0];
    try {
      if (op.kind === 'append') sb.appendBuffer(op.data);
      else sb.remove(op.start, op.end);
      this.queue.shift();
    } catch (e) {
      if (e.name === 'QuotaExceededError') this._onQuota(op);
      else this._fail(`${op.kind}: ${e.name}: ${e.message}`);
    }
  }

  /** Buffer full: drop everything behind the playhead, then retry the same append. */
  _onQuota(op) {
    if (op.quotaRetried) { this._fail('buffer full (QuotaExceededError)'); return; }
    op.quotaRetried = true;
    const v = this.video;
    const b = this.sb.buffered;
    const cut = v.currentTime - 0.5;
    if (b.length && cut > b.start(0)) {
      this.queue.unshift({ kind: 'remove', start: 0, end: cut });
      this._pump();
    } else {
      this._fail('buffer full (QuotaExceededError)');
    }
  }

  _onUpdateEnd() {
    const v = this.video;
    if (this.needSeek && v.buffered.length) {
      this.needSeek = false;
      const b = v.buffered;
      v.currentTime = Math.max(b.start(b.length - 1), b.end(b.length - 1) - this._jumpTarget());
      this._play();
    }
    this._pump();
  }

  _play() {
    const p = this.video?.play();
    if (p?.catch) p.catch((e) => {
      if (e.name === 'NotAllowedError') this._setState('blocked', 'tap to play');
    });
  }

  // ---- live-edge control ----------------------------------------------------------------

  _tick() {
    const v = this.video;
    if (!v) return;
    this.bytes.sample();
    this.frames.sample(this.presented);
    if (this.ws && this.ws.readyState === WebSocket.OPEN && performance.now() - this.lastMsgAt > SILENCE_S * 1000) {
      this._retry('no data from the camera');
      return;
    }
    const b = v.buffered;
    if (!b.length || !this.sb) return;
    const ct = v.currentTime;
    const end = b.end(b.length - 1);
    const lag = end - ct;
    const now = performance.now();
    if (this.render === 'paced') this.pacer.tune(now + performance.timeOrigin);

    if (ct !== this.lastCt) { this.lastCt = ct; this.lastCtChange = now; }
    const stalled = !v.paused && now - this.lastCtChange > STALL_S * 1000 && lag > 2 * this._jumpTarget();
    // Just (re)started: the server's GOP cache arrives in a burst; go straight to its end.
    const jumpAt = now - this.attachedAt < 2000 ? LAG_START_JUMP : LAG_JUMP;
    const margin = this._lagMin(now);
    if (lag > jumpAt || stalled || ct < b.start(0)) {
      // Too far behind, or stuck at a gap (a skipped GOP): go to the live edge.
      v.currentTime = Math.max(b.start(b.length - 1), end - this._jumpTarget());
      this.lagSamples = [];
      v.playbackRate = 1;
      this.jumps++;
      this.lastCtChange = now;
    } else {
      // Two speeds and hysteresis, changed only when the band is crossed: every playbackRate
      // assignment re-syncs Chromium's frame cadence and can drop a frame, so a rate that is
      // re-set on each tick (as this once did) costs a visible frame or two every second.
      let rate = v.playbackRate;
      if (this.render === 'paced') rate = PACED_RATE; // always waiting for the next append
      else if (margin == null || margin <= MARGIN) rate = 1; // at the set point
      else if (margin > CATCH_UP_FAST) rate = RATE_FAST; // far behind
      else if (margin > MARGIN + SLACK || rate !== 1) rate = RATE_CATCH_UP; // until MARGIN
      if (rate !== v.playbackRate) v.playbackRate = rate;
    }
    if (v.paused && this.state.kind !== 'blocked') this._play();

    // Playing: say so once frames move.
    const open = this.ws?.readyState === WebSocket.OPEN;
    if (open && !v.paused && v.readyState >= 2 && now - this.lastCtChange < 500) {
      if (this.state.kind !== 'playing') this._setState('playing', '');
      if (!this.playingSince) this.playingSince = now;
      if (now - this.playingSince > 5000) this.backoff.reset();
    }

    // Keep memory bounded: remove what is more than KEEP_BEHIND seconds behind.
    if (!this.queue.some((op) => op.kind === 'remove') && ct - b.start(0) > KEEP_BEHIND + 2) {
      this._enqueue({ kind: 'remove', start: 0, end: ct - KEEP_BEHIND });
    }
  }

  /** A fragment arrived: note the lag just before it is appended (the low point of the swing). */
  _sampleLag() {
    const v = this.video;
    const b = v?.buffered;
    if (!b?.length || v.paused || this.needSeek) return;
    const now = performance.now();
    this.lagSamples.push({ t: now, lag: b.end(b.length - 1) - v.currentTime });
    while (this.lagSamples.length && now - this.lagSamples[0].t > LAG_WINDOW_MS) this.lagSamples.shift();
  }

  /** Smallest lag at fragment arrivals over the last LAG_WINDOW_MS, or null (too few samples). */
  _lagMin(now) {
    const s = this.lagSamples.filter((x) => now - x.t <= LAG_WINDOW_MS);
    if (s.length < 5) return null;
    return Math.min(...s.map((x) => x.lag));
  }

  /** Where a jump lands behind the buffered end: the newest frame's duration plus the margin. */
  _jumpTarget() {
    const fps = this.info?.fps > 0 ? this.info.fps : 30;
    return 1 / fps + MARGIN;
  }

  /** Capture wallclock (Unix ms) of the frame at media time t, from the prft boxes. */
  _wallclockAt(t) {
    const list = this.prft;
    if (!list.length) return null;
    // Latest entry at or before t (list is ascending; search from the end, it's near the live edge).
    let i = list.length - 1;
    while (i > 0 && list[i].t > t + 1e-4) i--;
    const e = list[i];
    if (Math.abs(t - e.t) > 2) return null; // no nearby reference
    return e.wallMs + (t - e.t) * 1000;
  }

  _countFrames() {
    const v = this.video;
    if (v.requestVideoFrameCallback) {
      const cb = (_now, meta) => {
        if (v !== this.video) return;
        this.presented = meta.presentedFrames;
        this.shown = { mediaTime: meta.mediaTime, at: meta.presentationTime };
        if (this.render === 'paced') this._presented(meta);
        v.requestVideoFrameCallback(cb);
      };
      v.requestVideoFrameCallback(cb);
    } else {
      this._every(250, () => {
        const q = v.getVideoPlaybackQuality?.();
        if (q) this.presented = q.totalVideoFrames - q.droppedVideoFrames;
      });
    }
  }

  // ---- helpers --------------------------------------------------------------------------

  _setState(kind, text, detail) {
    if (this.state.kind === kind && this.state.text === text) return;
    this.state = { kind, text, detail };
    this.onState(this.state);
  }

  _every(ms, fn) { const t = setInterval(fn, ms); this.timers.add(t); return t; }
  _after(ms, fn) { const t = setTimeout(() => { this.timers.delete(t); fn(); }, ms); this.timers.add(t); return t; }
}
