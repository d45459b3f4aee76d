// Small helpers shared by the players.

/** ws:// or wss:// URL for a path relative to the page (works behind a reverse proxy too). */
export function wsUrl(path) {
  const u = new URL(path, location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

/** Reconnect delays: 0.5, 1, 2, 4, 8, 10, 10, … seconds. */
export class Backoff {
  constructor(first = 0.5, max = 10) { this.first = first; this.max = max; this.attempts = 0; }
  next() { return Math.min(this.max, this.first * 2 ** this.attempts++); }
  reset() { this.attempts = 0; }
}

/** Rate of a growing counter over a sliding window (per second). */
export class RateMeter {
  constructor(windowMs = 2000) { this.windowMs = windowMs; this.total = 0; this.samples = []; }
  add(n) { this.total += n; }
  sample(total = this.total) {
    const t = performance.now();
    const last = this.samples[this.samples.length - 1];
    if (last && total < last.v) this.samples = []; // counter was reset (new media element)
    this.total = total;
    this.samples.push({ t, v: total });
    while (this.samples.length > 2 && t - this.samples[1].t >= this.windowMs) this.samples.shift();
  }
  rate() {
    const s = this.samples;
    if (s.length < 2) return null;
    const a = s[0];
    const b = s[s.length - 1];
    return b.t > a.t ? ((b.v - a.v) * 1000) / (b.t - a.t) : null;
  }
}

/** Detaches and closes `player.ws` (a WebSocket player's socket). */
export function closeSocket(player) {
  const ws = player.ws;
  player.ws = null;
  if (ws) {
    ws.onmessage = ws.onclose = ws.onerror = null;
    try { ws.close(); } catch { /* already closed */ }
  }
}

/**
 * Reconnects `player` after its backoff delay, showing a countdown. The
 * player provides backoff, timers (_every/_after), _setState and _connect.
 */
export function scheduleReconnect(player, reason) {
  clearTimeout(player.retryTimer);
  clearInterval(player.countdown);
  const delay = player.backoff.next();
  const until = performance.now() + delay * 1000;
  const show = () => {
    const s = Math.max(1, Math.ceil((until - performance.now()) / 1000));
    player._setState('reconnecting', `reconnecting in ${s} s`, reason);
  };
  show();
  player.countdown = player._every(500, show);
  player.retryTimer = player._after(delay * 1000, () => {
    clearInterval(player.countdown);
    player.timers.delete(player.countdown);
    player._connect();
  });
}

/**
 * Opens `player.url` as the player's WebSocket: binary frames go to
 * `_onBinary`, text to `_onText`; a close or error schedules `_retry`.
 */
export function connectSocket(player) {
  if (player.stopped) return;
  player._setState(player.backoff.attempts ? 'reconnecting' : 'connecting', 'connecting…');
  let ws;
  try {
    ws = new WebSocket(player.url);
  } catch (e) {
    player._retry(`cannot open socket: ${e.message}`);
    return;
  }
  ws.binaryType = 'arraybuffer';
  player.ws = ws;
  player.lastMsgAt = performance.now();
  ws.onmessage = (ev) => {
    if (ws !== player.ws) return;
    player.lastMsgAt = performance.now();
    if (typeof ev.data === 'string') player._onText(ev.data);
    else player._onBinary(ev.data);
  };
  ws.onclose = (ev) => { if (ws === player.ws) player._retry(`connection closed${ev.code ? ` (${ev.code})` : ''}`); };
  ws.onerror = () => { if (ws === player.ws) player._retry('connection failed'); };
}

/** A muted, inline, autoplaying <video> for a live picture (browsers only autoplay muted;
 *  iOS plays inline only when asked). */
export function liveVideo() {
  const v = document.createElement('video');
  v.muted = true;
  v.defaultMuted = true;
  v.autoplay = true;
  v.playsInline = true;
  v.setAttribute('playsinline', '');
  return v;
}
