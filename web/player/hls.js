// LL-HLS player: the fallback where MSE over WebSocket is unavailable (iPhones before
// ManagedMediaSource), and selectable by hand (?player=hls).
//
// Safari/iOS play hls/index.m3u8 natively; elsewhere hls.js (vendored, loaded with import()
// only when this player starts) in low-latency mode: blocking playlist reloads and parts,
// ~3 part targets (PART-HOLD-BACK) behind live. Delay is read from EXT-X-PROGRAM-DATE-TIME.

import { ElementPlayer, hasMse } from './element.js';

const HLS_TYPE = 'application/vnd.apple.mpegurl';
const HLS_JS = '../vendor/hls.light.min.mjs';
// hls.js 1.7.4 stopped loading at a segment boundary although the next parts were listed when
// the buffer Chrome reported ended a few µs before the fragment end hls.js computed: it kept
// asking for the finished fragment until those parts left the playlist (3 target durations).
// The daemon now writes µs timestamps and exact durations, which removed that cause (docs/
// design.md, LL-HLS); this stays as a guard, counted in stats().nudges. If playback waits at
// the buffer end this long while the playlist is ahead, step past the end (more than
// maxBufferHole; to the live sync position if that is further): hls.js then loads the fragment
// there from its independent part, and the picture skips ahead instead of freezing.
const WEDGED_MS = 750;
const WEDGED_AHEAD_S = 0.4;  // playlist edge this far past our buffer: data exists, not loaded
const NUDGE_S = 0.15;
const HOLE_S = 0.1;           // hls.js maxBufferHole: closer than this counts as at the end

function nativeHls() {
  try {
    return document.createElement('video').canPlayType(HLS_TYPE) !== '';
  } catch {
    return false;
  }
}

export class HlsPlayer extends ElementPlayer {
  static id = 'hls';
  static label = 'HLS';
  static supported() { return nativeHls() || hasMse(); }

  /** @param {{onState?: (s: {kind: string, text: string}) => void, url?: string, native?: boolean}} opts */
  constructor(opts = {}) {
    super(opts);
    this.url = opts.url || new URL('hls/index.m3u8', location.href).href;
    // hls.js wherever MSE exists (its latency control is better); native otherwise.
    this.forceNative = opts.native ?? false;
    this.hls = null;
    this.mode = null; // 'hls.js' | 'native'
    this.wedgedSince = 0;
    this.nudges = 0;
  }

  _onVideo(v) {
    v.addEventListener('error', () => {
      if (this.mode === 'native') this._retry(`video error ${v.error?.code ?? ''}`);
    });
    this._every(250, () => this._unwedge());
  }

  /**
   * Sound: the playlist's Opus track plays in the <video> element (hls.js over MSE), muted
   * until asked (autoplay rules). No level meter here: null level.
   */
  audioState() {
    const v = this.video;
    const decoded = v?.webkitAudioDecodedByteCount ?? (v?.audioTracks?.length || 0);
    return v && decoded > 0 ? { muted: v.muted, level: null } : null;
  }

  stats() {
    const v = this.video;
    const out = {
      player: this.mode === 'native' ? 'hls (native)' : 'hls',
      state: this.state.kind,
      width: v?.videoWidth || 0,
      height: v?.videoHeight || 0,
      codec: null,
      fps: this.frames.rate(),
      bitrate: this.mode === 'hls.js' ? this.bytes.rate() * 8 : null,
      delay: null,
      delaySource: null,
      buffer: null,
      playbackRate: v?.playbackRate ?? 1,
      decodedFrames: 0,
      droppedFrames: 0,
      currentTime: v?.currentTime ?? 0,
      latency: null,          // hls.js: seconds behind the live edge
      targetLatency: null,
      liveSyncPosition: null,
      nudges: this.nudges,    // times playback was stepped past a wedged hls.js
    };
    if (!v) return out;
    const q = v.getVideoPlaybackQuality?.();
    if (q) { out.decodedFrames = q.totalVideoFrames; out.droppedFrames = q.droppedVideoFrames; }
    const b = v.buffered;
    if (b.length) out.buffer = Math.max(0, b.end(b.length - 1) - v.currentTime);
    let playing = null;
    if (this.hls) {
      const h = this.hls;
      out.latency = Number.isFinite(h.latency) ? h.latency : null;
      out.targetLatency = Number.isFinite(h.targetLatency) ? h.targetLatency : null;
      out.liveSyncPosition = Number.isFinite(h.liveSyncPosition) ? h.liveSyncPosition : null;
      out.codec = h.levels?.[h.currentLevel]?.videoCodec ?? null;
      playing = h.playingDate;
    } else if (typeof v.getStartDate === 'function') {
      const start = v.getStartDate();
      if (start && !Number.isNaN(start.getTime())) playing = new Date(start.getTime() + v.currentTime * 1000);
    }
    if (playing && !Number.isNaN(playing.getTime())) {
      out.delay = (Date.now() - playing.getTime()) / 1000;
      out.delaySource = 'pdt';
    } else if (out.latency != null) {
      out.delay = out.latency;
      out.delaySource = 'buffer';
    }
    return out;
  }

  // ---- internals --------------------------------------------------------------------------

  async _connect() {
    if (this.stopped || !this.video) return;
    this._setState(this.backoff.attempts ? 'reconnecting' : 'connecting', 'connecting…');
    const v = this.video;
    if (this.forceNative || !hasMse()) {
      if (!nativeHls()) { this._setState('error', 'HLS is not supported by this browser'); return; }
      this.mode = 'native';
      v.src = this.url;
      this._play(v);
      return;
    }
    let Hls;
    try {
      Hls = (await import(HLS_JS)).default;
    } catch (e) {
      this._setState('error', `cannot load hls.js: ${e?.message ?? e}`);
      return;
    }
    if (this.stopped || this.video !== v) return;
    this.mode = 'hls.js';
    const hls = new Hls({
      lowLatencyMode: true,
      // No back buffer to speak of: this is live, memory matters on phones.
      backBufferLength: 4,
      liveDurationInfinity: true,
      // Catch up by playing faster instead of stalling behind.
      maxLiveSyncPlaybackRate: 1.5,
      // hls.js moves its target latency back this much per stall, for good (default 1 s, sized
      // for 6 s segments). One stall at start-up, while the page loads, then cost a second for
      // the rest of the session; step back one part (our default part target) instead.
      liveSyncOnStallIncrease: 0.2,
      enableWorker: false,
      // ?hlsdebug: hls.js's own log in the console (how the stall below was found).
      debug: new URLSearchParams(location.search).has('hlsdebug'),
    });
    this.hls = hls;
    hls.on(Hls.Events.FRAG_LOADED, (_e, d) => this.bytes.add(d?.payload?.byteLength || d?.frag?.stats?.total || 0));
    hls.on(Hls.Events.ERROR, (_e, d) => {
      if (!d?.fatal) return;
      if (d.type === Hls.ErrorTypes.MEDIA_ERROR) { hls.recoverMediaError(); return; }
      this._retry(`${d.type}: ${d.details}`);
    });
    hls.attachMedia(v);
    hls.loadSource(this.url);
    this._play(v);
  }

  _teardown() {
    if (this.hls) { this.hls.destroy(); this.hls = null; }
  }

  /** See WEDGED_MS. */
  _unwedge() {
    const v = this.video;
    const edge = this.hls?.latestLevelDetails?.edge;
    if (!v || v.paused || v.seeking || v.readyState >= 3 || !Number.isFinite(edge)) {
      this.wedgedSince = 0;
      return;
    }
    const b = v.buffered;
    let end = null;
    for (let i = 0; i < b.length; i++) {
      if (b.start(i) <= v.currentTime + HOLE_S && v.currentTime <= b.end(i) + HOLE_S) end = b.end(i);
    }
    if (end === null || end - v.currentTime > HOLE_S || edge - end < WEDGED_AHEAD_S) {
      this.wedgedSince = 0;
      return;
    }
    const now = performance.now();
    if (!this.wedgedSince) { this.wedgedSince = now; return; }
    if (now - this.wedgedSince < WEDGED_MS) return;
    this.wedgedSince = 0;
    this.nudges++;
    const sync = this.hls.liveSyncPosition;
    const to = Math.max(end + NUDGE_S, Number.isFinite(sync) ? sync : 0);
    console.warn(`hls: waiting at ${end.toFixed(3)} s with the playlist at ${edge.toFixed(3)} s; stepping to ${to.toFixed(3)} s`);
    v.currentTime = to;
  }
}
