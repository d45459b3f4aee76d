// Reader for the test pattern's capture-time barcode, exactly as docs/test-pattern.md
// ("Barcode" → "Reading it") describes. A classic script (no import/export) so the probe can
// inject it into any page; in Node, `require`/`import` gets it through module.exports.
//
//   readBarcode(lum, W, H) -> Unix ms (mod 2^48) | null
//     lum(x, y): brightness 0–255 of the picture pixel (x, y); W, H: picture size in pixels.
//   readBarcodeImageData(img, W) -> same, from an ImageData holding the top rows of a picture
//     W pixels wide (only the barcode panel, y < round(4·W/36), is read).
//   crc8(bytes) -> CRC-8/SMBUS.
//   fullMs(value, nowMs) -> full Unix ms near nowMs for a 48-bit value.

/* eslint-disable no-var */
var PINHOLE_BARCODE = (function () {
  var START = [1, 1, 0, 1];
  var STOP = [1, 0, 1, 1];

  function crc8(bytes) {
    var crc = 0;
    for (var k = 0; k < bytes.length; k++) {
      crc ^= bytes[k];
      for (var b = 0; b < 8; b++) crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
    }
    return crc;
  }

  function readBarcode(lum, W, H) {
    if (W < 144 || Math.round((4 * W) / 36) > H) return null;
    var u = W / 36;
    var cells = new Array(64);
    for (var i = 0; i < 64; i++) {
      var c = i % 32;
      var r = Math.floor(i / 32);
      var x0 = Math.round((2 + c + 0.25) * u);
      var y0 = Math.round((1 + r + 0.25) * u);
      var x1 = Math.max(Math.round((2 + c + 0.75) * u), x0 + 1);
      var y1 = Math.max(Math.round((1 + r + 0.75) * u), y0 + 1);
      var s = 0;
      for (var y = y0; y < y1; y++) for (var x = x0; x < x1; x++) s += lum(x, y);
      cells[i] = s / ((x1 - x0) * (y1 - y0));
    }
    var white = (cells[0] + cells[1] + cells[3] + cells[60] + cells[62] + cells[63]) / 6;
    var black = (cells[2] + cells[61]) / 2;
    if (white - black < 60) return null;
    var thr = (white + black) / 2;
    var guard = (white - black) / 4;
    var bits = new Array(64);
    for (var j = 0; j < 64; j++) {
      if (Math.abs(cells[j] - thr) < guard) return null;
      bits[j] = cells[j] > thr ? 1 : 0;
    }
    for (var m = 0; m < 4; m++) if (bits[m] !== START[m] || bits[60 + m] !== STOP[m]) return null;
    var ms = 0; // 48 bits fit a double exactly
    for (var d = 4; d < 52; d++) ms = ms * 2 + bits[d];
    var bytes = [];
    for (var k = 5; k >= 0; k--) bytes.push(Math.floor(ms / Math.pow(2, 8 * k)) % 256);
    var want = 0;
    for (var w = 52; w < 60; w++) want = want * 2 + bits[w];
    return crc8(bytes) === want ? ms : null;
  }

  /** From RGBA ImageData whose width is the picture width W (brightness = G). */
  function readBarcodeImageData(img, W) {
    var data = img.data;
    var stride = img.width * 4;
    var lum = function (x, y) { return data[y * stride + x * 4 + 1]; };
    // Only the panel rows need to be present; pass a height that satisfies the fit check.
    return readBarcode(lum, W, Math.max(img.height, Math.round((4 * W) / 36)));
  }

  function fullMs(value, nowMs) {
    var M = Math.pow(2, 48);
    return nowMs - ((((nowMs - value) % M) + M) % M);
  }

  return { readBarcode: readBarcode, readBarcodeImageData: readBarcodeImageData, crc8: crc8, fullMs: fullMs };
})();

if (typeof module !== 'undefined' && module.exports) module.exports = PINHOLE_BARCODE;
