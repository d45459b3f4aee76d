// Injected into every probed page (after barcode.js) before the page's own scripts.
// For each frame the page *presents*, read the capture-time barcode from its pixels and record
// [Date.now(), Date.now() − capture ms]. How a presented frame is seen depends on the player:
//   video  — <video>.requestVideoFrameCallback (MSE, jmuxer, hls.js)
//   canvas — a hook on CanvasRenderingContext2D.drawImage: the player's own draw (WebCodecs)
//   img    — poll the <img> every few ms; a frame counts when its barcode first appears (MJPEG)
// The read draws only the barcode strip (top 4/36 of the width), scaled to half, into a private
// canvas and decodes it with PINHOLE_BARCODE (docs/test-pattern.md). Results: window.__lat.
/* global PINHOLE_BARCODE */
(() => {
  if (window !== window.top) return;
  const B = PINHOLE_BARCODE;
  const L = (window.__lat = { samples: [], reads: 0, fails: 0, repeats: 0, lastMs: null, hooked: 0 });
  let pc = null;
  let pctx = null;
  const origDraw = CanvasRenderingContext2D.prototype.drawImage;

  function measure(src, W, now) {
    if (!W || W < 144) return;
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
    } catch { return; }
    const v = B.readBarcodeImageData(pctx.getImageData(0, 0, pw, ph), pw);
    L.reads++;
    if (v == null) { L.fails++; return; }
    if (v === L.lastMs) { L.repeats++; return; }
    L.lastMs = v;
    L.samples.push([now, now - B.fullMs(v, now)]);
  }

  // canvas: measure the player's canvas right after each draw into it.
  CanvasRenderingContext2D.prototype.drawImage = function (...args) {
    const now = Date.now();
    const r = origDraw.apply(this, args);
    if (this !== pctx && this.canvas.isConnected && L.mode === 'canvas') measure(this.canvas, this.canvas.width, now);
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
        const now = Date.now();
        L.presented = meta.presentedFrames;
        measure(v, v.videoWidth, now);
        v.requestVideoFrameCallback(cb);
      };
      v.requestVideoFrameCallback(cb);
    }
  }

  // img: poll (a multipart JPEG <img> fires no event per part).
  function pollImg() {
    const img = document.querySelector('img');
    if (img && img.complete && img.naturalWidth) measure(img, img.naturalWidth, Date.now());
    setTimeout(pollImg, 3);
  }

  window.__latStart = (mode) => {
    L.mode = mode;
    if (mode === 'video') setInterval(hookVideos, 100);
    else if (mode === 'img') pollImg();
  };
  const mode = window.__LAT_MODE || new URLSearchParams(location.hash.slice(1)).get('probe');
  if (mode) document.addEventListener('DOMContentLoaded', () => window.__latStart(mode));
})();
