// Low-delay player: WebCodecs `VideoDecoder` → <canvas>, fed from /ws/fmp4.
//
// No media element, so no jitter buffer: each fragment is decoded as it arrives and each
// decoded frame is drawn on the display refresh pacer.js gives it (its capture time + a learned
// delay: the same refresh phase for every frame, so constant latency and even motion), or with
// ?render=immediate at once (lowest delay, but a refresh more or less from frame to frame), or
// with ?render=raf on the next animation frame; then closed. Same protocol as the MSE
// player: a text {"type":"init",codec,…} message, a binary init segment (its avcC box is the
// decoder's `description`), then one [prft] moof mdat message per frame. The prft wall-clock
// time becomes the chunk timestamp (µs), so the delay figure is simply now − timestamp of the
// frame on screen.
//
// Needs a secure context (https, or http://localhost / 127.0.0.1) for `VideoDecoder`.

import { boxes, findBox, fragmentTrack, parseTimescale, ntpToUnixMs } from './boxes.js';
import { Backoff, RateMeter, closeSocket, connectSocket, scheduleReconnect, wsUrl } from './util.js';
import { Pacer } from './pacer.js';
import { AudioOut } from './audio.js';

// Chunks waiting in the decoder. A new connection starts with a burst (the server's cached GOP,
// up to a keyframe interval of frames) that must all be decoded to reach the live frame; only a
// backlog beyond that means the decoder cannot keep up: then drop to the next keyframe.
const MAX_DECODE_QUEUE = 60;
const SKIP_DRAW_QUEUE = 2;  // a decoded frame with more than this many chunks behind it is stale: don't draw it
const SILENCE_S = 5;        // no message this long on an open socket: reconnect
const HIDDEN_S = 10;        // page hidden this long: disconnect

/** Body of the first `avcC` box in an init segment (the AVCDecoderConfigurationRecord). */
export function avcDescription(buf) {
  const b = new Uint8Array(buf);
  for (let i = 4; i + 4 <= b.length; i++) {
    if (b[i] === 0x61 && b[i + 1] === 0x76 && b[i + 2] === 0x63 && b[i + 3] === 0x43) { // 'avcC'
      const size = ((b[i - 4] << 24) | (b[i - 3] << 16) | (b[i - 2] << 8) | b[i - 1]) >>> 0;
      if (size >= 8 && i - 4 + size <= b.length) return b.slice(i + 4, i - 4 + size);
    }
  }
  return null;
}

/** Codec string (avc1.PPCCLL) from an avcC record. */
function codecFromAvcC(d) {
  const hex = (n) => n.toString(16).padStart(2, '0');
  return `avc1.${hex(d[1])}${hex(d[2])}${hex(d[3])}`;
}

/** Split one media message: {wallMs, tfdt, data (AVCC sample bytes), key}. */
export function parseMediaMessage(buf) {
  const dv = new DataView(buf);
  let wallMs = null;
  let tfdt = null;
  let data = null;
  for (const b of boxes(dv)) {
    if (b.type === 'prft' && b.size >= 24) {
      const p = b.body + 8;
      wallMs = ntpToUnixMs(dv.getUint32(p), dv.getUint32(p + 4));
    } else if (b.type === 'moof') {
      const t = findBox(dv, 'tfdt', b.body, b.start + b.size);
      if (t) {
        const v1 = dv.getUint8(t.body) === 1;
        tfdt = v1 ? dv.getUint32(t.body + 4) * 4294967296 + dv.getUint32(t.body + 8) : dv.getUint32(t.body + 4);
      }
    } else if (b.type === 'mdat') {
      data = new Uint8Array(buf, b.body, b.start + b.size - b.body);
    }
  }
  if (!data) return null;
  // Keyframe: an IDR slice (NAL type 5) among the length-prefixed NAL units.
  let key = false;
  for (let off = 0; off + 5 <= data.length;) {
    const len = ((data[off] << 24) | (data[off + 1] << 16) | (data[off + 2] << 8) | data[off + 3]) >>> 0;
    if ((data[off + 4] & 0x1f) === 5) { key = true; break; }
    off += 4 + len;
  }
  return { wallMs, tfdt, data, key };
}

export class WebCodecsPlayer {
  static id = 'webcodecs';
  static label = 'WebCodecs';
  static supported() {
    return !!globalThis.isSecureContext && typeof globalThis.VideoDecoder === 'function' &&
      typeof globalThis.EncodedVideoChunk === 'function' && typeof WebSocket === 'function';
  }

  /** @param {{onState?: Function, url?: string, render?: 'paced'|'immediate'|'raf'}} opts */
  constructor(opts = {}) {
    this.onState = opts.onState || (() => {});
    // Every track where the browser decodes audio (AudioDecoder); else the video alone.
    this.audio = AudioOut.supported() ? new AudioOut({ delayMs: () => this._delayMs() }) : null;
    this.url = opts.url || wsUrl(this.audio ? 'ws/fmp4' : 'ws/fmp4?tracks=video');
    const q = new URLSearchParams(globalThis.location?.search || '');
    // 'paced' (default): each frame on the refresh its capture time + a learned delay gives it
    // (pacer.js): steady latency and cadence, a refresh or so above 'immediate''s median.
    // 'immediate': draw each frame when decoded (lowest median, two-valued latency, judder).
    // 'raf': the newest decoded frame on the next animation frame. (bench/latency/README.md)
    this.render = opts.render || (['raf', 'immediate', 'paced'].includes(q.get('render')) ? q.get('render') : 'paced');
    this.pacer = new Pacer();
    this.configuredAt = 0;
    this.lastFrameAt = 0;    // paced: the previous animation frame (Unix ms)
    this.paced = [];         // paced mode: decoded frames waiting for their refresh [{frame, due, ready}]
    this.backoff = new Backoff();
    this.bytes = new RateMeter();
    this.frames = new RateMeter();
    this.state = { kind: 'idle', text: '' };
    this.canvas = null;
    this.ctx = null;
    this.ws = null;
    this.decoder = null;
    this.info = null;
    this.timescale = 1e6; // pinholed's track timescale (µs), until the init says
    this.awaitInit = false;
    this.needKey = true;
    this.pending = null;     // raf mode: newest decoded frame not yet drawn
    this.raf = 0;
    this.drawn = 0;          // frames drawn (presented)
    this.decoded = 0;
    this.dropped = 0;        // decoded but replaced before drawing (raf mode) or skipped to resync
    this.resyncs = 0;
    this.delay = null;       // s, of the last frame drawn
    this.lastMsgAt = 0;
    this.timers = new Set();
    this.stopped = true;
  }

  start(container) {
    this.stopped = false;
    const c = document.createElement('canvas');
    c.width = this.info?.width || 1280;
    c.height = this.info?.height || 720;
    c.setAttribute('aria-label', 'live camera');
    this.canvas = c;
    this.ctx = c.getContext('2d', { alpha: false, desynchronized: true });
    container.appendChild(c);
    this._every(250, () => this._tick());
    this._onVisibility = () => this._visibility();
    document.addEventListener('visibilitychange', this._onVisibility);
    this._connect();
  }

  stop() {
    this.stopped = true;
    for (const t of this.timers) { clearTimeout(t); clearInterval(t); }
    this.timers.clear();
    document.removeEventListener('visibilitychange', this._onVisibility);
    this._closeSocket();
    this._closeDecoder();
    this.canvas?.remove();
    this.canvas = null;
    this.ctx = null;
    this._setState('idle', '');
  }

  /** The daemon restarted (seen by the status poll): reconnect now. */
  restart() {
    if (this.stopped || this.state.kind === 'paused') return;
    this.backoff.reset();
    this._closeSocket();
    this._connect();
  }

  stats() {
    return {
      player: 'webcodecs',
      state: this.state.kind,
      width: this.canvas?.width && this.drawn ? this.canvas.width : (this.info?.width || 0),
      height: this.canvas?.height && this.drawn ? this.canvas.height : (this.info?.height || 0),
      codec: this.info?.codec || null,
      fps: this.frames.rate(),
      bitrate: this.bytes.rate() * 8,
      delay: this.delay,
      delaySource: this.delay != null ? 'prft' : null,
      buffer: null,
      decodeQueue: this.decoder?.decodeQueueSize ?? 0,
      decodedFrames: this.decoded,
      presentedFrames: this.drawn,
      droppedFrames: this.dropped,
      resyncs: this.resyncs,
      render: this.render,
      lateFrames: this.render === 'paced' ? this.pacer.late : null, // not decoded by their refresh
      audio: this.audio?.active ? { played: this.audio.played, late: this.audio.late, level: this.audio.level } : null,
    };
  }

  // ---- connection -------------------------------------------------------------------------

  _connect() {
    this.awaitInit = false; // a new socket starts with an init message
    connectSocket(this);
  }

  _closeSocket() {
    closeSocket(this);
  }

  _retry(reason) {
    if (this.stopped) return;
    this._closeSocket();
    this._closeDecoder();
    scheduleReconnect(this, reason);
  }

  _visibility() {
    clearTimeout(this.hiddenTimer);
    if (document.hidden) {
      this.hiddenTimer = this._after(HIDDEN_S * 1000, () => {
        clearTimeout(this.retryTimer);
        clearInterval(this.countdown);
        this._closeSocket();
        this._closeDecoder();
        this._setState('paused', 'paused while hidden');
      });
    } else if (this.state.kind === 'paused') {
      this.backoff.reset();
      this._connect();
    }
  }

  // ---- decoding -----------------------------------------------------------------------------

  _onText(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if (msg.type !== 'init') return;
    this.info = msg;
    this.awaitInit = true;
  }

  _onBinary(buf) {
    this.bytes.add(buf.byteLength);
    if (this.awaitInit) {
      this.awaitInit = false;
      this.timescale = parseTimescale(buf) || 1e6;
      this._configure(buf);
      this.audio?.setInit(buf);
      return;
    }
    const d = this.decoder;
    if (!d || d.state !== 'configured') return;
    if ((fragmentTrack(buf) ?? 1) !== 1) { // another track: the audio
      if (!this.needKey) this.audio?.push(buf);
      return;
    }
    const m = parseMediaMessage(buf);
    if (!m) return;
    if (this.needKey && !m.key) return; // wait for an IDR after (re)configuring
    if (d.decodeQueueSize > MAX_DECODE_QUEUE && !m.key) {
      // The decoder is not keeping up: drop to the next keyframe rather than fall behind.
      this.needKey = true;
      this.resyncs++;
      return;
    }
    this.needKey = false;
    const ts = m.wallMs != null ? Math.round(m.wallMs * 1000) : Math.round((m.tfdt || 0) / this.timescale * 1e6);
    try {
      d.decode(new EncodedVideoChunk({ type: m.key ? 'key' : 'delta', timestamp: ts, data: m.data }));
    } catch (e) {
      this._fail(`decode: ${e.message}`);
    }
  }

  _configure(initSegment) {
    this._closeDecoder();
    const description = avcDescription(initSegment);
    if (!description) { this._fail('init segment without avcC'); return; }
    const config = {
      codec: this.info?.codec || codecFromAvcC(description),
      description,
      optimizeForLatency: true,
      hardwareAcceleration: 'no-preference',
    };
    const decoder = new VideoDecoder({
      output: (frame) => {
        if (decoder !== this.decoder) { frame.close(); return; }
        this._onFrame(frame);
      },
      error: (e) => { if (decoder === this.decoder) this._fail(`decoder: ${e.message}`); },
    });
    this.configuredAt = performance.now();
    try {
      decoder.configure(config);
    } catch (e) {
      this._setState('error', `this browser cannot decode ${config.codec}: ${e.message}`);
      this._closeSocket();
      return;
    }
    this.decoder = decoder;
    this.needKey = true;
    VideoDecoder.isConfigSupported?.(config).then((r) => {
      if (!r.supported && decoder === this.decoder) {
        this._setState('error', `this browser cannot decode ${config.codec}`);
        this._closeSocket();
        this._closeDecoder();
      }
    }, () => {});
  }

  /** The video's capture-to-screen delay now (ms): the pacer's (+ the wait for the sound), else the last frame's. */
  _delayMs() {
    if (this.render === 'paced' && this.pacer.delay != null) return this.pacer.delay + this._audioWaitMs();
    return this.delay != null ? Math.max(this.delay * 1000, this.audio?.needMs ?? 0) : null;
  }

  /** Paced: how much longer than the pacer's delay a frame waits for its sound (0 when muted). */
  _audioWaitMs() {
    return this.pacer.waitFor(this.audio?.needMs);
  }

  /** Sound: whether this stream has any, its level (dBFS), muted or not. */
  audioState() {
    return this.audio?.active ? { muted: this.audio.muted, level: this.audio.level } : null;
  }

  setMuted(muted) {
    if (!this.audio) return;
    if (muted) this.audio.mute(); else this.audio.unmute();
  }

  _closeDecoder() {
    this.audio?.close();
    const d = this.decoder;
    this.decoder = null;
    if (d && d.state !== 'closed') { try { d.close(); } catch { /* closed */ } }
    if (this.pending) { this.pending.close(); this.pending = null; }
    if (this.raf) { cancelAnimationFrame(this.raf); this.raf = 0; }
    for (const p of this.paced) p.frame.close();
    this.paced = [];
    this.pacer.reset();
  }

  _fail(reason) {
    if (this.stopped) return;
    console.warn('[pinhole webcodecs]', reason);
    this._retry(reason);
  }

  _onFrame(frame) {
    this.decoded++;
    if (this.decoder && this.decoder.decodeQueueSize > SKIP_DRAW_QUEUE) {
      // Catching up (the start-up burst, or a hiccup): newer frames are right behind this one.
      frame.close();
      this.dropped++;
      return;
    }
    if (this.render === 'paced') {
      // Not while hidden (no animation frames) nor in the first 2 s (the start-up burst's tail).
      const t = performance.now();
      const ready = t + performance.timeOrigin; // Unix ms, the frame timestamps' timeline
      const learnable = !document.hidden && t - this.configuredAt > 2000;
      const due = learnable ? this.pacer.due(frame.timestamp / 1000, ready) : null;
      if (due == null) { this._draw(frame); return; }
      const wait = this._audioWaitMs();
      this.paced.push({ frame, due: due + wait, pacerDue: due, wait, ready });
      while (this.paced.length > 8) { this.paced.shift().frame.close(); this.dropped++; }
      this._pace();
    } else if (this.render === 'raf') {
      if (this.pending) { this.pending.close(); this.dropped++; }
      this.pending = frame;
      if (!this.raf) {
        this.raf = requestAnimationFrame(() => {
          this.raf = 0;
          const f = this.pending;
          this.pending = null;
          if (f) this._draw(f);
        });
      }
    } else {
      this._draw(frame);
    }
  }

  /** Paced mode: an animation-frame loop; each draws the newest frame that is due. */
  _pace() {
    if (this.raf || this.stopped) return;
    this.raf = requestAnimationFrame((ts) => {
      this.raf = 0;
      const now = ts + performance.timeOrigin;
      this.pacer.frame(ts);
      let show = null;
      while (this.paced.length && this.paced[0].due <= now + 1) {
        if (show) { show.frame.close(); this.dropped++; }
        show = this.paced.shift();
      }
      if (show) {
        // The pacer judges its own schedule: the wait for the sound is not its lateness.
        this.pacer.shown(show.pacerDue, show.ready + show.wait, this.lastFrameAt, now);
        this._draw(show.frame);
      }
      this.lastFrameAt = now;
      if (this.decoder) this._pace();
    });
  }

  _draw(frame) {
    const c = this.canvas;
    if (!c) { frame.close(); return; }
    const w = frame.displayWidth;
    const h = frame.displayHeight;
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    this.ctx.drawImage(frame, 0, 0, w, h);
    this.delay = (Date.now() - frame.timestamp / 1000) / 1000;
    frame.close();
    this.drawn++;
    if (this.state.kind !== 'playing') this._setState('playing', '');
  }

  _tick() {
    if (this.render === 'paced') this.pacer.tune(performance.now() + performance.timeOrigin);
    this.bytes.sample();
    this.frames.sample(this.drawn);
    if (this.ws && this.ws.readyState === WebSocket.OPEN && performance.now() - this.lastMsgAt > SILENCE_S * 1000) {
      this._retry('no data from the camera');
      return;
    }
    if (this.state.kind === 'playing' && this.frames.rate() > 0) this.backoff.reset();
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
