// Injected into every probed page (after barcode.js) before the page's own scripts.
// For each frame the page *presents*, read the capture-time barcode from its pixels and record
// [t, t − capture ms], t being the wall-clock time of the rendering frame that composites the new
// picture (the screen shows it one refresh later, the same for every player):
//   video  — <video>.requestVideoFrameCallback (MSE, jmuxer, hls.js); t = metadata.presentationTime.
//            Not the callback's own time: the callback can run a frame late when the main thread
//            is busy, and that is not when the picture appeared.
//   canvas — a hook on CanvasRenderingContext2D.drawImage: the player's own draw (WebCodecs);
//            t = the frame that commits the draw (the current one inside a rAF callback, else
//            the next), but never before the draw itself.
//   img    — poll the <img> every few ms; a frame counts when its barcode first appears (MJPEG);
//            t = the next frame after the poll saw it.
// The read draws only the barcode strip (top 4/36 of the width), scaled to half, into a private
// canvas and decodes it with PINHOLE_BARCODE (docs/test-pattern.md). Results: window.__lat.
/* global PINHOLE_BARCODE */
(() => {
  if (window !== window.top) return;
  const B = PINHOLE_BARCODE;
  const L = (window.__lat = { samples: [], reads: 0, fails: 0, repeats: 0, lastMs: null, hooked: 0, shown: [], phase: [] });
  // WebRTC: keep every RTCPeerConnection the page makes, for the bench's getStats breakdown.
  if (typeof window.RTCPeerConnection === 'function') {
    const Orig = window.RTCPeerConnection;
    window.__pcs = [];
    window.RTCPeerConnection = class extends Orig {
      constructor(...a) { super(...a); window.__pcs.push(this); }
    };
  }
  let pc = null;
  let pctx = null;
  const origDraw = CanvasRenderingContext2D.prototype.drawImage;
  const origRaf = window.requestAnimationFrame.bind(window);
  /** performance.now() timestamp → Unix ms (both clocks read now, so no drift accumulates). */
  const wallAt = (perfMs) => Date.now() - (performance.now() - perfMs);

  /** Read the barcode of `src` now; the full capture Unix ms, or null (unreadable or a repeat). */
  function read(src, W) {
    if (!W || W < 144) return null;
    if (!pc) {
      pc = document.createElement('canvas');
      pctx = pc.getContext('2d', { willReadFrequently: true, alpha: false });
    }
    const sh = Math.round((4 * W) / 36) + 1;
    const pw = Math.round(W / 2);
    const ph = Math.ceil(sh / 2);
    if (pc.width !== pw) pc.width = pw;
    if (pc.height !== ph) pc.height = ph;
    try {
      origDraw.call(pctx, src, 0, 0, W, sh, 0, 0, pw, ph);
    } catch { return null; }
    const v = B.readBarcodeImageData(pctx.getImageData(0, 0, pw, ph), pw);
    L.reads++;
    if (v == null) { L.fails++; return null; }
    if (v === L.lastMs) { L.repeats++; return null; }
    L.lastMs = v;
    return B.fullMs(v, Date.now());
  }
  const record = (tMs, capMs) => L.samples.push([tMs, Math.round((tMs - capMs) * 10) / 10]);

  // Frames for canvas and img: captures seen since the last frame started, timestamped with the
  // frame that will composite them. rAF callbacks are wrapped so a draw inside one (the player's
  // render loop) is known to land in that same frame.
  let rafTs = null;   // the running rAF callback's frame time, else null
  let pending = [];   // [{cap, seenAt}] waiting for the next frame
  let frameAsked = false;
  window.requestAnimationFrame = (cb) => origRaf((ts) => {
    rafTs = ts;
    try { cb(ts); } finally { rafTs = null; }
  });
  function onFrame(ts) {
    frameAsked = false;
    const t = wallAt(ts);
    for (const p of pending) record(Math.max(t, p.seenAt), p.cap);
    pending = [];
  }
  function seen(cap) {
    // Committed in this very frame, whose timestamp is its start: a callback that runs late can
    // draw after it, and a picture is never on screen before it was drawn.
    if (rafTs != null) { record(Math.max(wallAt(rafTs), Date.now()), cap); return; }
    pending.push({ cap, seenAt: Date.now() });
    if (!frameAsked) { frameAsked = true; origRaf(onFrame); }
  }

  // canvas: read the player's canvas right after each draw into it.
  CanvasRenderingContext2D.prototype.drawImage = function (...args) {
    const r = origDraw.apply(this, args);
    if (this !== pctx && this.canvas.isConnected && L.mode === 'canvas') {
      const cap = read(this.canvas, this.canvas.width);
      if (cap != null) seen(cap);
    }
    return r;
  };

  // video: hook every <video> that appears.
  const hooked = new WeakSet();
  function hookVideos() {
    for (const v of document.querySelectorAll('video')) {
      if (hooked.has(v) || !v.requestVideoFrameCallback) continue;
      hooked.add(v);
      L.hooked++;
      const cb = (_t, meta) => {
        L.presented = meta.presentedFrames;
        const cap = read(v, v.videoWidth);
        if (cap != null) {
          // Where presentationTime falls in the refresh interval (rAF ticks are the vsync
          // ticks): just after a tick when the picture was taken in that frame's update (MSE,
          // jmuxer, WebRTC with smoothing), anywhere when the player handed it to the compositor
          // between frames (WebRTC without smoothing: playout delay 0), which composites it at
          // the next tick. Each sample keeps how far that next tick is (bench.mjs decides).
          let toTick = null;
          if (ticks.length > 2) {
            const d = ticks.slice(1).map((x, i) => x - ticks[i]).sort((a, b) => a - b);
            const iv = d[d.length >> 1];
            const ph = ((meta.presentationTime - ticks[ticks.length - 1]) % iv + iv) % iv;
            toTick = ph > 0 ? Math.round((iv - ph) * 10) / 10 : 0;
            L.phase.push(Math.round(ph * 10) / 10);
            if (L.phase.length > 4000) L.phase.splice(0, 2000);
          }
          const t = wallAt(meta.presentationTime);
          record(t, cap);
          if (toTick != null) L.samples[L.samples.length - 1].push(toTick);
          // How long after that frame the screen shows it (expectedDisplayTime), for the report.
          L.shown.push(meta.expectedDisplayTime - meta.presentationTime);
          if (L.shown.length > 4000) L.shown.splice(0, 2000);
        }
        v.requestVideoFrameCallback(cb);
      };
      v.requestVideoFrameCallback(cb);
    }
  }

  // img: poll (a multipart JPEG <img> fires no event per part).
  function pollImg() {
    const img = document.querySelector('img');
    if (img && img.complete && img.naturalWidth) {
      const cap = read(img, img.naturalWidth);
      if (cap != null) seen(cap);
    }
    setTimeout(pollImg, 3);
  }

  // The last rAF ticks (performance.now() ms): the refresh phase of <video> presentations.
  const ticks = [];
  const tick = (ts) => { ticks.push(ts); if (ticks.length > 32) ticks.shift(); origRaf(tick); };

  window.__latStart = (mode) => {
    L.mode = mode;
    if (mode === 'video') { setInterval(hookVideos, 100); origRaf(tick); }
    else if (mode === 'img') pollImg();
  };
  const mode = window.__LAT_MODE || new URLSearchParams(location.hash.slice(1)).get('probe');
  if (mode) document.addEventListener('DOMContentLoaded', () => window.__latStart(mode));
})();
