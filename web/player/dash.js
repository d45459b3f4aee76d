// LL-DASH player: dash.js (vendored, loaded with import() only when this player starts) on
// dash/index.mpd, the same CMAF segments and parts as LL-HLS. The segment being written comes
// chunked, one part (moof+mdat) at a time (availabilityTimeOffset), and dash.js holds its
// latency target with playback-rate catch-up. Selectable by hand (?player=dash); "Auto" never
// picks it before HLS. Delay: dash.js's live latency, on the server's clock (UTCTiming), from
// the capture time the manifest anchors media time to.

import { Backoff, RateMeter } from './util.js';

const DASH_JS = '../vendor/dash.mediaplayer.min.mjs';
const STALL_S = 6;        // currentTime frozen this long while playing: reload
// Seconds behind live dash.js aims for, by its own clock mapping. At 0.8 the barcode in the
// picture read 0.31 s (dash.js's figure runs ~0.5 s high, not yet explained) with 0.1 s of
// buffer, which stalled under load; 1.2 keeps ~0.5 s of buffer. (The manifest's
// ServiceDescription says 0.8; this setting wins.)
const LIVE_DELAY_S = 1.2;

function hasMse() {
  const MS = globalThis.ManagedMediaSource || globalThis.MediaSource;
  return !!MS && typeof MS.isTypeSupported === 'function' && MS.isTypeSupported('video/mp4; codecs="avc1.42c01f"');
}

export class DashPlayer {
  static id = 'dash';
  static label = 'DASH';
  static supported() { return hasMse(); }

  /** @param {{onState?: (s: {kind: string, text: string}) => void, url?: string}} opts */
  constructor(opts = {}) {
    this.onState = opts.onState || (() => {});
    this.url = opts.url || new URL('dash/index.mpd', location.href).href;
    this.backoff = new Backoff();
    this.bytes = new RateMeter();
    this.frames = new RateMeter();
    this.video = null;
    this.dash = null;
    this.state = { kind: 'idle', text: '' };
    this.timers = new Set();
    this.lastCt = -1;
    this.lastCtChange = 0;
    this.stopped = true;
  }

  start(container) {
    this.stopped = false;
    const v = document.createElement('video');
    v.muted = true;
    v.defaultMuted = true;
    v.autoplay = true;
    v.playsInline = true;
    v.setAttribute('playsinline', '');
    v.addEventListener('playing', () => { this.backoff.reset(); this._setState('playing', ''); });
    this.video = v;
    container.appendChild(v);
    this._every(500, () => this._tick());
    this._connect();
  }

  stop() {
    this.stopped = true;
    for (const t of this.timers) { clearTimeout(t); clearInterval(t); }
    this.timers.clear();
    this._teardown();
    if (this.video) {
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

  stats() {
    const v = this.video;
    const out = {
      player: 'dash',
      state: this.state.kind,
      width: v?.videoWidth || 0,
      height: v?.videoHeight || 0,
      codec: null,
      fps: this.frames.rate(),
      bitrate: this.bytes.rate() != null ? this.bytes.rate() * 8 : null,
      delay: null,
      delaySource: null,
      buffer: null,
      playbackRate: v?.playbackRate ?? 1,
      decodedFrames: 0,
      droppedFrames: 0,
      currentTime: v?.currentTime ?? 0,
      latency: null,          // dash.js: seconds behind live (capture time, server clock)
      targetLatency: null,
      lowLatency: null,       // dash.js runs its low-latency mode (chunked segments)
    };
    if (!v) return out;
    const q = v.getVideoPlaybackQuality?.();
    if (q) { out.decodedFrames = q.totalVideoFrames; out.droppedFrames = q.droppedVideoFrames; }
    const b = v.buffered;
    if (b.length) out.buffer = Math.max(0, b.end(b.length - 1) - v.currentTime);
    const d = this.dash;
    if (d) {
      try {
        const lat = d.getCurrentLiveLatency();
        if (Number.isFinite(lat) && lat > 0) { out.latency = lat; out.delay = lat; out.delaySource = 'dash'; }
        const target = d.getTargetLiveDelay?.();
        if (Number.isFinite(target)) out.targetLatency = target;
        out.lowLatency = d.getLowLatencyModeEnabled?.() ?? null;
      } catch { /* not ready yet */ }
    }
    return out;
  }

  // ---- internals --------------------------------------------------------------------------

  async _connect() {
    if (this.stopped || !this.video) return;
    this._setState(this.backoff.attempts ? 'reconnecting' : 'connecting', 'connecting…');
    const v = this.video;
    let dashjs;
    try {
      dashjs = await import(DASH_JS);
    } catch (e) {
      this._setState('error', `cannot load dash.js: ${e?.message ?? e}`);
      return;
    }
    if (this.stopped || this.video !== v) return;
    const d = dashjs.MediaPlayer().create();
    d.updateSettings({
      debug: { logLevel: new URLSearchParams(location.search).has('dashdebug') ? 5 : 1 },
      streaming: {
        delay: { liveDelay: LIVE_DELAY_S },
        liveCatchup: { enabled: true, maxDrift: 3, playbackRate: { min: -0.2, max: 0.5 } },
        // No back buffer to speak of: this is live, memory matters on phones.
        buffer: { bufferToKeep: 4, bufferPruningInterval: 4 },
        utcSynchronization: { enabled: true },
      },
    });
    this.dash = d;
    d.on(dashjs.MediaPlayer.events.FRAGMENT_LOADING_COMPLETED, (e) => {
      this.bytes.add(e?.request?.bytesLoaded || e?.response?.byteLength || 0);
    });
    d.on(dashjs.MediaPlayer.events.ERROR, (e) => this._retry(`dash.js: ${e?.error?.message ?? e?.error?.code ?? 'error'}`));
    d.initialize(v, this.url, true);
    v.play().catch((e) => { if (e?.name === 'NotAllowedError') this._setState('blocked', 'tap to play'); });
  }

  _teardown() {
    if (this.dash) { try { this.dash.destroy(); } catch { /* already gone */ } this.dash = null; }
  }

  _retry(reason) {
    if (this.stopped) return;
    this._teardown();
    const delay = this.backoff.next();
    this._setState('reconnecting', `reconnecting in ${Math.ceil(delay)} s`, reason);
    this._after(delay * 1000, () => this._connect());
  }

  _tick() {
    const v = this.video;
    if (!v) return;
    this.bytes.sample();
    const q = v.getVideoPlaybackQuality?.();
    if (q) this.frames.sample(q.totalVideoFrames);
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
