// Fallback player: the browser decodes /mjpeg (multipart/x-mixed-replace JPEG) in an <img>.
// Works everywhere, including browsers without MediaSource (older iPhones); more bandwidth.

import { Backoff } from './util.js';

export class MjpegPlayer {
  static id = 'mjpeg';
  static label = 'MJPEG';
  static supported() { return true; }

  constructor(opts = {}) {
    this.onState = opts.onState || (() => {});
    this.url = opts.url || 'mjpeg';
    this.backoff = new Backoff();
    this.img = null;
    this.timer = null;
    this.state = { kind: 'idle', text: '' };
  }

  start(container) {
    const img = document.createElement('img');
    img.alt = 'live camera (MJPEG)';
    img.decoding = 'async';
    img.addEventListener('load', () => {
      this.backoff.reset();
      this._setState('playing', '');
    });
    img.addEventListener('error', () => this._retry('stream failed'));
    this.img = img;
    container.appendChild(img);
    this._onVisibility = () => {
      clearTimeout(this.hiddenTimer);
      if (document.hidden) {
        this.hiddenTimer = setTimeout(() => {
          clearTimeout(this.timer);
          clearInterval(this.countdown);
          this.img?.removeAttribute('src');
          this._setState('paused', 'paused while hidden');
        }, 10000);
      } else if (this.state.kind === 'paused') {
        this.backoff.reset();
        this._connect();
      }
    };
    document.addEventListener('visibilitychange', this._onVisibility);
    this._connect();
  }

  stop() {
    document.removeEventListener('visibilitychange', this._onVisibility);
    clearTimeout(this.hiddenTimer);
    clearTimeout(this.timer);
    clearInterval(this.countdown);
    if (this.img) {
      this.img.removeAttribute('src'); // closes the multipart connection
      this.img.remove();
    }
    this.img = null;
    this._setState('idle', '');
  }

  /** The daemon restarted (seen by the status poll): reopen the stream now. */
  restart() {
    if (!this.img || this.state.kind === 'paused') return;
    clearTimeout(this.timer);
    clearInterval(this.countdown);
    this._connect();
  }

  stats() {
    const img = this.img;
    return {
      player: 'mjpeg',
      state: this.state.kind,
      width: img?.naturalWidth || 0,
      height: img?.naturalHeight || 0,
      codec: 'jpeg',
      fps: null,
      bitrate: null,
      delay: null,
      delaySource: null,
    };
  }

  _connect() {
    if (!this.img) return;
    this._setState(this.backoff.attempts ? 'reconnecting' : 'connecting', 'connecting…');
    const sep = this.url.includes('?') ? '&' : '?';
    this.img.src = `${this.url}${sep}t=${Date.now()}`; // fresh URL: never a cached frame
  }

  _retry(reason) {
    if (!this.img) return;
    clearTimeout(this.timer);
    clearInterval(this.countdown);
    const delay = this.backoff.next();
    const until = performance.now() + delay * 1000;
    const show = () => {
      const s = Math.max(1, Math.ceil((until - performance.now()) / 1000));
      this._setState('reconnecting', `reconnecting in ${s} s`, reason);
    };
    show();
    this.countdown = setInterval(show, 500);
    this.timer = setTimeout(() => { clearInterval(this.countdown); this._connect(); }, delay * 1000);
  }

  _setState(kind, text, detail) {
    if (this.state.kind === kind && this.state.text === text) return;
    this.state = { kind, text, detail };
    this.onState(this.state);
  }
}
