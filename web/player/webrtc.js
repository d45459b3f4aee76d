// WebRTC player: a WHEP client (RFC 9725) on whep. RTCPeerConnection with a recvonly video
// transceiver (and a recvonly audio one: the daemon sends Opus when it has an audio track),
// the offer POSTed as it is (pinhole is ICE-lite on one UDP port and answers our checks, so it
// needs none of our candidates), the session's URL from Location, DELETE on stop. The picture
// goes out as soon as the browser takes it (jitterBufferTarget 0).
// Refusals are final and say why (401/403: login; 503: the server's session limit): in Auto
// the UI then moves on to the next player. A failed connection retries with backoff.
// Delay is an estimate from getStats: half the RTT + the jitter buffer's delay + decode time
// over the last 500 ms tick (the browser does not expose the capture time without extra headers).
// Auto tries WebRTC first; when its packets cannot reach this browser (UDP blocked, a remote
// proxy) it says so within ICE_MS, Auto moves on, and Auto skips it for SKIP_MS afterwards.

import { ElementPlayer } from './element.js';

const DISCONNECTED_GRACE_MS = 4000; // ICE "disconnected" this long: start over
const RESTART_AFTER_MS = 1500; // ICE "disconnected" this long: try an ICE restart first
// ICE not connected this long after the answer: no path to the camera. On a LAN our host
// candidates answer within milliseconds; with STUN/TURN servers listed a relay takes longer.
const ICE_MS = 3000;
const ICE_RELAY_MS = 10000;
// Connected, video arriving, nothing decoded this long: this browser cannot decode it (an
// error: Auto moves on). Nothing arriving is no error: the camera may be away (the status
// overlay says so), and the session plays when it is back.
const FIRST_PICTURE_MS = 8000;
// A browser WebRTC could not reach the camera from: Auto starts elsewhere for this long.
const LS_UNREACHABLE = 'pinhole.webrtc.unreachable';
const SKIP_MS = 60 * 60 * 1000;

const REFUSED = {
  400: 'the server could not read the offer',
  401: 'a viewer login is needed',
  403: 'not allowed from this page',
  406: 'the browser offers no H.264 the server can send',
  415: 'the server refused the offer',
  503: 'too many WebRTC viewers (the server\u2019s limit)',
};

/** `Link: <url>; rel="ice-server"; username=…; credential=…` headers as RTCIceServers. */
export function iceServersFromLink(link) {
  if (!link) return [];
  const out = [];
  for (const part of link.split(/,(?=\s*<)/)) {
    const m = /<([^>]+)>/.exec(part);
    if (!m || !/rel="?ice-server"?/.test(part)) continue;
    const s = { urls: m[1] };
    const u = /username="([^"]*)"/.exec(part);
    const c = /credential="([^"]*)"/.exec(part);
    if (u) s.username = u[1];
    if (c) s.credential = c[1];
    out.push(s);
  }
  return out;
}

export class WebRtcPlayer extends ElementPlayer {
  static id = 'webrtc';
  static label = 'WebRTC';
  static supported() { return typeof RTCPeerConnection === 'function'; }

  /** Auto passes over WebRTC for a while after it could not connect from this browser. */
  static skipInAuto() {
    try {
      const t = Number(localStorage.getItem(LS_UNREACHABLE));
      return t > 0 && Date.now() - t < SKIP_MS;
    } catch { return false; }
  }

  /** @param {{onState?: (s: {kind: string, text: string}) => void, url?: string}} opts */
  constructor(opts = {}) {
    super(opts);
    this.url = opts.url || new URL('whep', location.href).href;
    this.pc = null;
    this.resource = null;   // the session's URL (Location), DELETEd on stop
    this.etag = null;
    this.muted = true;
    this.hasAudio = false;
    this.last = null;        // the last getStats sample (for per-second deltas)
    this.net = {};           // what the stats panel shows
    this.played = false;     // a picture came at least once (failures then retry)
    this.onPageHide = () => this._delete(true);
  }

  _onVideo() {
    addEventListener('pagehide', this.onPageHide);
  }

  stop() {
    removeEventListener('pagehide', this.onPageHide);
    super.stop();
  }

  // Chromium plays a 2x2 placeholder until the first frame is decoded.
  _showsPicture(v) { return v.videoWidth > 2 && v.videoHeight > 2; }

  _onPlaying() {
    this.played = true;
    try { localStorage.removeItem(LS_UNREACHABLE); } catch { /* private mode */ }
    super._onPlaying();
  }

  audioState() {
    return this.hasAudio ? { muted: this.muted, level: null } : null;
  }

  setMuted(m) {
    this.muted = m;
    if (this.video) { this.video.muted = m; if (!m) this.video.play().catch(() => {}); }
  }

  stats() {
    const v = this.video;
    return {
      player: 'webrtc',
      state: this.state.kind,
      width: this.net.width || v?.videoWidth || 0,
      height: this.net.height || v?.videoHeight || 0,
      codec: this.net.codec ?? null,
      fps: this.frames.rate(),
      bitrate: this.bytes.rate() != null ? this.bytes.rate() * 8 : null,
      delay: this.net.delay ?? null,
      delaySource: this.net.delay != null ? 'webrtc' : null,
      buffer: this.net.jitterBuffer ?? null,
      decodedFrames: this.net.framesDecoded ?? 0,
      droppedFrames: this.net.framesDropped ?? 0,
      packetsLost: this.net.packetsLost ?? null,
      nacks: this.net.nacks ?? null,
      rtt: this.net.rtt ?? null,
      session: this.resource,
    };
  }

  // ---- internals --------------------------------------------------------------------------

  async _connect() {
    if (this.stopped || !this.video) return;
    this._setState(this.backoff.attempts ? 'reconnecting' : 'connecting', 'connecting…');
    let iceServers = [];
    try {
      // OPTIONS lists the configured STUN/TURN servers (none needed on a LAN).
      const o = await fetch(this.url, { method: 'OPTIONS', cache: 'no-store' });
      iceServers = iceServersFromLink(o.headers.get('link'));
    } catch { /* the POST says what is wrong */ }
    if (this.stopped) return;
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
    this.pc = pc;
    const stream = new MediaStream();
    const video = pc.addTransceiver('video', { direction: 'recvonly' });
    const audio = pc.addTransceiver('audio', { direction: 'recvonly' });
    for (const t of [video, audio]) {
      // As little buffering as the browser takes: this is a live camera.
      if ('jitterBufferTarget' in t.receiver) t.receiver.jitterBufferTarget = 0;
      else if ('playoutDelayHint' in t.receiver) t.receiver.playoutDelayHint = 0;
    }
    pc.ontrack = (ev) => {
      if (pc !== this.pc || !this.video) return;
      stream.addTrack(ev.track);
      if (ev.track.kind === 'audio') {
        // Sound only once packets flow: the daemon answers audio even without a microphone.
        ev.track.onunmute = () => { if (pc === this.pc) this.hasAudio = true; };
      }
      if (this.video.srcObject !== stream) this.video.srcObject = stream;
      this.video.muted = this.muted;
      this.video.play().catch((e) => { if (e?.name === 'NotAllowedError') this._setState('blocked', 'tap to play'); });
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      const s = pc.connectionState;
      if (s === 'failed') this._fail('WebRTC connection failed (is UDP to the camera blocked?)', true);
      else if (s === 'disconnected') {
        // A changed network (Wi-Fi to wired, a new address): new ICE credentials on the same
        // session (PATCH) keep the decoder and the session; if that does not help, start over.
        this._after(RESTART_AFTER_MS, () => {
          if (pc === this.pc && pc.connectionState === 'disconnected') this.iceRestart();
        });
        this._after(DISCONNECTED_GRACE_MS, () => {
          if (pc === this.pc && pc.connectionState === 'disconnected') this._retry('WebRTC connection lost');
        });
      }
    };
    let answer;
    try {
      await pc.setLocalDescription(await pc.createOffer());
      const r = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/sdp' },
        body: pc.localDescription.sdp,
        cache: 'no-store',
      });
      if (pc !== this.pc) return;
      if (r.status !== 201) {
        const body = (await r.text().catch(() => '')).trim().slice(0, 200);
        const why = REFUSED[r.status] || `the server answered ${r.status}`;
        this._teardown();
        // Refusals are final here: retrying would only be refused again.
        this._setState('error', `WebRTC refused: ${why}${body ? ` (${body})` : ''}`);
        return;
      }
      const loc = r.headers.get('location');
      this.resource = loc ? new URL(loc, this.url).href : null;
      this.etag = r.headers.get('etag');
      answer = await r.text();
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      const iceMs = iceServers.length ? ICE_RELAY_MS : ICE_MS;
      this._after(iceMs, () => {
        if (pc === this.pc && !['connected', 'completed'].includes(pc.iceConnectionState)) {
          this._fail('WebRTC cannot reach the camera (is UDP to it blocked?)', true);
        }
      });
      const undecodable = () => {
        if (pc !== this.pc || this.played || this.state.kind === 'blocked') return;
        if ((this.last?.bytesReceived ?? 0) > 0 && !this.last?.framesDecoded) {
          this._fail('this browser cannot decode the camera\u2019s WebRTC video');
        } else {
          this._after(FIRST_PICTURE_MS, undecodable);
        }
      };
      this._after(FIRST_PICTURE_MS, undecodable);
    } catch (e) {
      if (pc === this.pc) this._retry(`WebRTC: ${e?.message ?? e}`);
    }
  }

  /**
   * ICE restart on the same session (WHEP PATCH, RFC 9725 §4.4): new ICE credentials in an
   * sdpfrag, the server's new ones in the answer fragment, put into the answer we have.
   * Resolves true when the server took it.
   */
  async iceRestart() {
    const pc = this.pc;
    if (!pc || !this.resource || !pc.remoteDescription) return false;
    try {
      const offer = await pc.createOffer({ iceRestart: true });
      await pc.setLocalDescription(offer);
      const ufrag = /a=ice-ufrag:(\S+)/.exec(offer.sdp)?.[1];
      const pwd = /a=ice-pwd:(\S+)/.exec(offer.sdp)?.[1];
      const r = await fetch(this.resource, {
        method: 'PATCH',
        headers: { 'content-type': 'application/trickle-ice-sdpfrag', 'if-match': this.etag || '*' },
        body: `a=ice-ufrag:${ufrag}\r\na=ice-pwd:${pwd}\r\n`,
        cache: 'no-store',
      });
      if (pc !== this.pc || r.status !== 200) return false;
      const frag = await r.text();
      const u = /a=ice-ufrag:(\S+)/.exec(frag)?.[1];
      const p = /a=ice-pwd:(\S+)/.exec(frag)?.[1];
      if (!u || !p) return false;
      this.etag = r.headers.get('etag') || this.etag;
      const sdp = pc.remoteDescription.sdp
        .replace(/a=ice-ufrag:\S+/g, `a=ice-ufrag:${u}`)
        .replace(/a=ice-pwd:\S+/g, `a=ice-pwd:${p}`);
      await pc.setRemoteDescription({ type: 'answer', sdp });
      return true;
    } catch {
      return false;
    }
  }

  /** Ends the server's session (DELETE); keepalive lets it leave with the page. */
  _delete(keepalive = false) {
    const url = this.resource;
    this.resource = null;
    if (url) fetch(url, { method: 'DELETE', keepalive }).catch(() => {});
  }

  _teardown() {
    this._delete();
    if (this.pc) { try { this.pc.close(); } catch { /* closed */ } this.pc = null; }
    this.hasAudio = false;
    this.last = null;
    this.net = {};
  }

  /**
   * Before the first picture a failure is final (Auto moves on); after one, retry.
   * `unreachable`: no path to the camera from here, so Auto skips WebRTC for a while.
   */
  _fail(reason, unreachable = false) {
    if (this.played) { this._retry(reason); return; }
    if (unreachable) {
      try { localStorage.setItem(LS_UNREACHABLE, String(Date.now())); } catch { /* private mode */ }
    }
    this._teardown();
    this._setState('error', reason);
  }

  /** On the shell's 500 ms tick: rates and the stats panel's figures from getStats. */
  _sampleRates() { this._stats(); }

  async _stats() {
    const pc = this.pc;
    if (!pc) return;
    let report;
    try { report = await pc.getStats(); } catch { return; }
    if (pc !== this.pc) return;
    let inb = null;
    let pair = null;
    const codecs = new Map();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') inb = s;
      else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
      else if (s.type === 'codec') codecs.set(s.id, s);
    });
    if (!inb) return;
    this.frames.sample(inb.framesDecoded ?? 0);
    this.bytes.sample(inb.bytesReceived ?? 0);
    const prev = this.last;
    this.last = inb;
    const per = (k) => (prev && inb[k] != null && prev[k] != null ? inb[k] - prev[k] : null);
    const emitted = per('jitterBufferEmittedCount');
    const decoded = per('framesDecoded');
    const jb = emitted > 0 ? per('jitterBufferDelay') / emitted : null;
    const dec = decoded > 0 ? per('totalDecodeTime') / decoded : null;
    const rtt = pair?.currentRoundTripTime ?? null;
    this.net = {
      width: inb.frameWidth,
      height: inb.frameHeight,
      codec: codecs.get(inb.codecId)?.mimeType ?? null,
      framesDecoded: inb.framesDecoded,
      framesDropped: inb.framesDropped,
      packetsLost: inb.packetsLost,
      nacks: inb.nackCount,
      rtt,
      jitterBuffer: jb,
      delay: jb != null ? jb + (dec ?? 0) + (rtt ?? 0) / 2 : null,
    };
  }
}
