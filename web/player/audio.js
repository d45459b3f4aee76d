// Sound for the WebCodecs player: the Opus track of /ws/fmp4, decoded with WebCodecs'
// `AudioDecoder` and played through Web Audio, each packet at the moment its capture time
// reaches the screen: capture wall-clock time (the fragment's prft, the same clock as the
// video's) + the video's current delay (`delayMs()`, the pacer's), so sound and picture leave
// the speaker and the screen together however the delay moves (docs/audio.md).
//
// Browsers start muted: packets are decoded (for the level meter) but played only after
// `unmute()`, which must run in a user gesture (it creates the AudioContext).

import { boxes, ntpToUnixMs } from './boxes.js';

const JOIN_S = 0.015;   // a packet within this of the previous one's end is played right after it
const LATE_S = 0.005;   // a packet due sooner than this from now is dropped (it would be late)

/** The Opus parameters of an init segment (its dOps box), or null. */
export function opusConfig(buf) {
  // Inside stsd's Opus sample entry, which boxes.js does not descend into: scan for it.
  const b = new Uint8Array(buf);
  const dv = new DataView(buf);
  for (let i = 4; i + 4 <= b.length; i++) {
    if (b[i] === 0x64 && b[i + 1] === 0x4f && b[i + 2] === 0x70 && b[i + 3] === 0x73) { // 'dOps'
      const body = i + 4;
      if (dv.getUint32(i - 4) < 19 || body + 11 > b.length) return null;
      return { channels: b[body + 1], preSkip: dv.getUint16(body + 2) };
    }
  }
  return null;
}

/** One audio message: {wallMs, data}. */
export function parseAudioMessage(buf) {
  const dv = new DataView(buf);
  let wallMs = null;
  let data = null;
  for (const b of boxes(dv)) {
    if (b.type === 'prft' && b.size >= 24) {
      wallMs = ntpToUnixMs(dv.getUint32(b.body + 8), dv.getUint32(b.body + 12));
    } else if (b.type === 'mdat') {
      data = new Uint8Array(buf, b.body, b.start + b.size - b.body);
    }
  }
  return data && wallMs != null ? { wallMs, data } : null;
}

export class AudioOut {
  static supported() {
    return typeof globalThis.AudioDecoder === 'function' && typeof globalThis.EncodedAudioChunk === 'function';
  }

  /** @param {{delayMs: () => number|null}} opts the video's capture-to-screen delay now */
  constructor({ delayMs }) {
    this.delayMs = delayMs;
    this.decoder = null;
    this.ctx = null;
    this.gain = null;
    this.muted = true;
    this.nextT = 0;        // AudioContext time where the last scheduled buffer ends
    this.level = -Infinity; // dBFS peak of the latest packets, for the meter
    this.played = 0;
    this.late = 0;
    this.channels = 0;
    this.clicks = [];      // loud onsets as scheduled: {wallMs, outMs (performance.now() time)}
    this.needs = [];       // recent (capture → could be heard) ms of decoded packets
  }

  /**
   * The least capture-to-speaker delay (ms) the sound can have now: a packet arrives a frame
   * (20 ms) after its capture starts, and the output adds its own latency. The video is held
   * back to this when it would be shown earlier (null while muted: the picture does not wait).
   */
  get needMs() {
    if (this.muted || !this.ctx || this.needs.length < 10) return null;
    const s = [...this.needs].sort((a, b) => a - b);
    return s[Math.floor(s.length * 0.95)];
  }

  /** A new init segment: (re)configure for its Opus track, if it has one. */
  setInit(initSegment) {
    this.close();
    const c = opusConfig(initSegment);
    if (!c || !AudioOut.supported()) return false;
    this.channels = c.channels;
    const dec = new AudioDecoder({
      output: (data) => { if (dec === this.decoder) this._onData(data); else data.close(); },
      error: (e) => { console.warn('[pinhole audio]', e.message); if (dec === this.decoder) this.decoder = null; },
    });
    try {
      dec.configure({ codec: 'opus', sampleRate: 48000, numberOfChannels: c.channels });
    } catch (e) {
      console.warn('[pinhole audio] cannot decode Opus:', e.message);
      return false;
    }
    this.decoder = dec;
    return true;
  }

  get active() { return !!this.decoder; }

  /** One fragment of the audio track. */
  push(buf) {
    const d = this.decoder;
    if (!d || d.state !== 'configured') return;
    const m = parseAudioMessage(buf);
    if (!m) return;
    // Timestamp: capture wall-clock µs, the video chunks' timeline.
    d.decode(new EncodedAudioChunk({ type: 'key', timestamp: Math.round(m.wallMs * 1000), data: m.data }));
  }

  /** In a user gesture: start (or resume) playing. */
  unmute() {
    if (!this.ctx) {
      const Ctx = globalThis.AudioContext || globalThis.webkitAudioContext;
      if (!Ctx) return;
      this.ctx = new Ctx({ latencyHint: 'interactive', sampleRate: 48000 });
      this.gain = this.ctx.createGain();
      this.gain.connect(this.ctx.destination);
    }
    this.ctx.resume();
    this.muted = false;
    this.nextT = 0;
  }

  mute() {
    this.muted = true;
    this.ctx?.suspend();
  }

  close() {
    const d = this.decoder;
    this.decoder = null;
    if (d && d.state !== 'closed') { try { d.close(); } catch { /* closed */ } }
    this.level = -Infinity;
  }

  _onData(data) {
    const n = data.numberOfFrames;
    const ch = data.numberOfChannels;
    const planes = [];
    let peak = 0;
    let onset = -1; // first sample above half scale (the test tone's click): for sync checks
    for (let c = 0; c < ch; c++) {
      const p = new Float32Array(n);
      data.copyTo(p, { planeIndex: c, format: 'f32-planar' });
      for (let i = 0; i < n; i++) {
        const v = Math.abs(p[i]);
        if (v > peak) peak = v;
        if (c === 0 && onset < 0 && v > 0.3) onset = i;
      }
      planes.push(p);
    }
    const wallMs = data.timestamp / 1000;
    data.close();
    // A meter that falls slowly: the newest peak, or the old one 1.5 dB lower per packet.
    const db = peak > 0 ? 20 * Math.log10(peak) : -Infinity;
    this.level = Math.max(db, this.level - 1.5);
    if (this.muted || !this.ctx || this.ctx.state !== 'running') return;
    // Where on the AudioContext's timeline the capture time + delay falls: getOutputTimestamp
    // pairs the context time being heard with the performance clock, output latency included.
    const ts = this.ctx.getOutputTimestamp();
    const ahead = (this.ctx.currentTime - ts.contextTime) * 1000 + LATE_S * 1000;
    this.needs.push(Date.now() - wallMs + ahead + 3);
    if (this.needs.length > 100) this.needs.shift();
    const delay = this.delayMs();
    if (delay == null) return;
    const target = wallMs + delay - performance.timeOrigin;
    let t = ts.contextTime + (target - ts.performanceTime) / 1000;
    if (Math.abs(t - this.nextT) < JOIN_S) t = this.nextT;
    if (t < this.ctx.currentTime + LATE_S) { this.late++; return; }
    const buf = this.ctx.createBuffer(ch, n, 48000);
    planes.forEach((p, c) => buf.copyToChannel(p, c));
    const src = this.ctx.createBufferSource();
    src.buffer = buf;
    src.connect(this.gain);
    src.start(t);
    if (onset >= 0) {
      const outMs = ts.performanceTime + (t - ts.contextTime) * 1000 + onset / 48;
      this.clicks.push({ wallMs: wallMs + onset / 48, outMs });
      if (this.clicks.length > 30) this.clicks.shift();
    }
    this.nextT = t + n / 48000;
    this.played++;
  }
}
