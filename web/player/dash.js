// LL-DASH player: dash.js (vendored, loaded with import() only when this player starts) on
// dash/index.mpd, the same CMAF segments and parts as LL-HLS. The segment being written comes
// chunked, one part (moof+mdat) at a time (availabilityTimeOffset), and dash.js holds its
// latency target with playback-rate catch-up. Selectable by hand (?player=dash); "Auto" never
// picks it before HLS. Delay: dash.js's live latency, on the server's clock (UTCTiming), from
// the capture time the manifest anchors media time to.

import { ElementPlayer, hasMse } from './element.js';

const DASH_JS = '../vendor/dash.mediaplayer.min.mjs';
// Seconds behind live dash.js aims for, by its own clock mapping. At 0.8 the barcode in the
// picture read 0.31 s (dash.js's figure runs ~0.5 s high, not yet explained) with 0.1 s of
// buffer, which stalled under load; 1.2 keeps ~0.5 s of buffer. (The manifest's
// ServiceDescription says 0.8; this setting wins.)
const LIVE_DELAY_S = 1.2;

export class DashPlayer extends ElementPlayer {
  static id = 'dash';
  static label = 'DASH';
  static supported() { return hasMse(); }

  /** @param {{onState?: (s: {kind: string, text: string}) => void, url?: string}} opts */
  constructor(opts = {}) {
    super(opts);
    this.url = opts.url || new URL('dash/index.mpd', location.href).href;
    this.dash = null;
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
    this._play(v);
  }

  _teardown() {
    if (this.dash) { try { this.dash.destroy(); } catch { /* already gone */ } this.dash = null; }
  }
}
