// What the players that play into a <video> element (hls.js, dash.js, WebRTC) share:
// the element (muted, inline, autoplay), timers that die with the player, the reconnect
// backoff, frame/byte rates, the stall check (currentTime frozen while playing → reload) and
// the state callback. A subclass gives _connect() and _teardown(), and may add listeners and
// timers in _onVideo(v).

import { Backoff, RateMeter, liveVideo } from './util.js';

const STALL_S = 6;     // currentTime frozen this long while playing: reload

/** MSE (or Safari's ManagedMediaSource) that takes H.264: what hls.js and dash.js need. */
export function hasMse() {
  const MS = globalThis.ManagedMediaSource || globalThis.MediaSource;
  return !!MS && typeof MS.isTypeSupported === 'function' && MS.isTypeSupported('video/mp4; codecs="avc1.42c01f"');
}

export class ElementPlayer {
  /** @param {{onState?: (s: {kind: string, text: string}) => void}} opts */
  constructor(opts = {}) {
    this.onState = opts.onState || (() => {});
    this.backoff = new Backoff();
    this.bytes = new RateMeter();
    this.frames = new RateMeter();
    this.video = null;
    this.state = { kind: 'idle', text: '' };
    this.timers = new Set();
    this.lastCt = -1;
    this.lastCtChange = 0;
    this.stopped = true;
  }

  start(container) {
    this.stopped = false;
    const v = liveVideo();
    // 'resize' too: a WebRTC element starts "playing" on a 2x2 placeholder before the first
    // decoded frame gives it its real size.
    const playing = () => { if (v === this.video && !v.paused && this._showsPicture(v)) this._onPlaying(); };
    v.addEventListener('playing', playing);
    v.addEventListener('resize', playing);
    this.video = v;
    container.appendChild(v);
    this._every(500, () => this._tick());
    this._onVideo(v);
    this._connect();
  }

  stop() {
    this.stopped = true;
    for (const t of this.timers) { clearTimeout(t); clearInterval(t); }
    this.timers.clear();
    this._teardown();
    if (this.video) {
      this.video.srcObject = null;
      this.video.removeAttribute('src');
      this.video.load();
      this.video.remove();
    }
    this.video = null;
    this._setState('idle', '');
  }

  /** The daemon restarted: its segment names changed, start over. */
  restart() {
    if (this.stopped) return;
    this._teardown();
    this._connect();
  }

  setMuted(muted) {
    if (this.video) this.video.muted = muted;
  }

  // ---- for subclasses ------------------------------------------------------------------------

  /** Extra listeners and timers on a new element. */
  _onVideo(_v) {}

  /** Does the element show the stream's picture yet (not a placeholder)? */
  _showsPicture(_v) { return true; }

  /** The picture is on screen. */
  _onPlaying() {
    this.backoff.reset();
    this._setState('playing', '');
  }

  _connect() {}

  _teardown() {}

  /** Start the element playing; autoplay refused: ask for a tap. */
  _play(v) {
    v.play().catch((e) => { if (e?.name === 'NotAllowedError') this._setState('blocked', 'tap to play'); });
  }

  _retry(reason) {
    if (this.stopped) return;
    this._teardown();
    const delay = this.backoff.next();
    this._setState('reconnecting', `reconnecting in ${Math.ceil(delay)} s`, reason);
    this._after(delay * 1000, () => this._connect());
  }

  /** Frame and byte rates, every tick (WebRTC takes both from getStats instead). */
  _sampleRates(v) {
    this.bytes.sample();
    const q = v.getVideoPlaybackQuality?.();
    if (q) this.frames.sample(q.totalVideoFrames);
  }

  _tick() {
    const v = this.video;
    if (!v) return;
    this._sampleRates(v);
    const now = performance.now();
    if (v.currentTime !== this.lastCt) { this.lastCt = v.currentTime; this.lastCtChange = now; return; }
    if (this.state.kind === 'playing' && !v.paused && now - this.lastCtChange > STALL_S * 1000) {
      this.lastCtChange = now;
      this._retry('playback stalled');
    }
  }

  _every(ms, fn) { const t = setInterval(fn, ms); this.timers.add(t); }
  _after(ms, fn) { const t = setTimeout(() => { this.timers.delete(t); fn(); }, ms); this.timers.add(t); }

  _setState(kind, text, detail) {
    if (this.state.kind === kind && this.state.text === text) return;
    this.state = { kind, text, detail };
    this.onState(this.state);
  }
}
