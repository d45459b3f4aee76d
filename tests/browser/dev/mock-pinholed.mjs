// A stand-in for pinholed, for UI work without the Rust daemon: ffmpeg makes the media.
// Speaks the same protocol (/ws/fmp4 with prft, /ws/h264, /mjpeg, /snapshot.jpg, /api/status)
// and serves web/. Not used by the tests, which run the real pinholed.
//   node tests/browser/dev/mock-pinholed.mjs [port]
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const port = Number(process.argv[2] || 8090);
const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../web');
const W = 1280, H = 720, FPS = 30, GOP = 30;
const started = Date.now();
const viewers = { ws_h264: 0, ws_fmp4: 0, mp4: 0, mjpeg: 0 };
let frames = 0;

// ---- fMP4 from ffmpeg: one fragment per frame, prft with the wallclock -----------------------
const x264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-profile:v', 'baseline',
  '-pix_fmt', 'yuv420p', '-x264-params', `keyint=${GOP}:min-keyint=${GOP}:scenecut=0`, '-b:v', '2M'];
const src = ['-re', '-f', 'lavfi', '-i', `testsrc2=size=${W}x${H}:rate=${FPS}`];
const ff = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...src, ...x264,
  '-video_track_timescale', '90000', '-output_ts_offset', '40000',
  '-f', 'mp4', '-movflags', 'empty_moov+default_base_moof+frag_every_frame', '-write_prft', 'wallclock', 'pipe:1'],
{ stdio: ['ignore', 'pipe', 'inherit'] });
let pending = Buffer.alloc(0);
let init = null;
let group = [];
let gop = [];
const fmp4Clients = new Set();
ff.stdout.on('data', (chunk) => {
  pending = Buffer.concat([pending, chunk]);
  while (pending.length >= 8) {
    const size = pending.readUInt32BE(0);
    if (pending.length < size) break;
    const box = pending.subarray(0, size);
    const type = box.toString('latin1', 4, 8);
    pending = pending.subarray(size);
    group.push(box);
    if (type === 'moov') { init = Buffer.concat(group); group = []; }
    if (type === 'mdat') {
      const frag = Buffer.concat(group);
      group = [];
      if (frames % GOP === 0) gop = [];
      gop.push(frag);
      frames++;
      for (const c of fmp4Clients) wsSend(c, frag, 2);
    }
  }
});

// ---- raw Annex B for /ws/h264 ----------------------------------------------------------------
const ff2 = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...src, ...x264, '-bsf:v', 'h264_metadata=aud=insert', '-f', 'h264', 'pipe:1'],
  { stdio: ['ignore', 'pipe', 'inherit'] });
const h264Clients = new Set();
let hbuf = Buffer.alloc(0);
let h264gop = [];
ff2.stdout.on('data', (chunk) => {
  hbuf = Buffer.concat([hbuf, chunk]);
  // split on AUD (00 00 00 01 09)
  const aud = Buffer.from([0, 0, 0, 1, 9]);
  let i;
  while ((i = hbuf.indexOf(aud, 5)) > 0) {
    const au = hbuf.subarray(0, i);
    hbuf = hbuf.subarray(i);
    const key = au.includes(Buffer.from([0, 0, 1, 0x67])) || au.includes(Buffer.from([0, 0, 0, 1, 0x67]));
    if (key) h264gop = [];
    h264gop.push(au);
    for (const c of h264Clients) wsSend(c, au, 2);
  }
});

// ---- MJPEG -----------------------------------------------------------------------------------
let lastJpeg = null;
const mjpegClients = new Set();
const ff3 = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...src, '-r', '10', '-q:v', '6', '-f', 'mjpeg', 'pipe:1'],
  { stdio: ['ignore', 'pipe', 'inherit'] });
let jbuf = Buffer.alloc(0);
ff3.stdout.on('data', (chunk) => {
  jbuf = Buffer.concat([jbuf, chunk]);
  let e;
  while ((e = jbuf.indexOf(Buffer.from([0xff, 0xd9]))) >= 0) {
    lastJpeg = jbuf.subarray(0, e + 2);
    jbuf = jbuf.subarray(e + 2);
    for (const res of mjpegClients) {
      res.write(`--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ${lastJpeg.length}\r\n\r\n`);
      res.write(lastJpeg);
      res.write('\r\n');
    }
  }
});

// ---- minimal WebSocket server ------------------------------------------------------------------
function wsSend(sock, data, opcode) {
  const len = data.length;
  let head;
  if (len < 126) head = Buffer.from([0x80 | opcode, len]);
  else if (len < 65536) { head = Buffer.alloc(4); head[0] = 0x80 | opcode; head[1] = 126; head.writeUInt16BE(len, 2); }
  else { head = Buffer.alloc(10); head[0] = 0x80 | opcode; head[1] = 127; head.writeBigUInt64BE(BigInt(len), 2); }
  if (!sock.destroyed) { sock.write(head); sock.write(data); }
}

const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.md': 'text/plain' };
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/api/status') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ version: '0.0.0-mock', uptime_s: (Date.now() - started) / 1000,
      source: { kind: 'test', detail: 'mock test pattern (ffmpeg)', state: 'running', error: null },
      stream: { width: W, height: H, codec: 'avc1.42c01f', fps: FPS, bitrate: 2000000, keyframe_interval: GOP },
      frames, keyframes: Math.floor(frames / GOP), drops: 0, measured: { fps: FPS, bitrate: 2000000 }, viewers }));
    return;
  }
  if (url.pathname === '/snapshot.jpg') { res.setHeader('content-type', 'image/jpeg'); res.end(lastJpeg); return; }
  if (url.pathname === '/mjpeg') {
    res.writeHead(200, { 'content-type': 'multipart/x-mixed-replace; boundary=frame', 'cache-control': 'no-store' });
    mjpegClients.add(res); viewers.mjpeg++;
    res.on('close', () => { mjpegClients.delete(res); viewers.mjpeg--; });
    return;
  }
  let p = url.pathname === '/' ? '/index.html' : url.pathname;
  const file = path.join(webDir, path.normalize(p));
  if (!file.startsWith(webDir) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) { res.statusCode = 404; res.end('not found'); return; }
  res.setHeader('content-type', MIME[path.extname(file)] || 'application/octet-stream');
  res.setHeader('cache-control', 'no-cache');
  fs.createReadStream(file).pipe(res);
});
server.on('upgrade', (req, sock) => {
  const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  sock.on('data', (d) => { if ((d[0] & 0x0f) === 8) sock.destroy(); });
  sock.on('error', () => {});
  if (req.url === '/ws/fmp4') {
    wsSend(sock, Buffer.from(JSON.stringify({ type: 'init', codec: 'avc1.42c01f', width: W, height: H, fps: FPS })), 1);
    wsSend(sock, init, 2);
    for (const f of gop) wsSend(sock, f, 2);
    fmp4Clients.add(sock); viewers.ws_fmp4++;
    sock.on('close', () => { fmp4Clients.delete(sock); viewers.ws_fmp4--; });
  } else if (req.url === '/ws/h264') {
    for (const f of h264gop) wsSend(sock, f, 2);
    h264Clients.add(sock); viewers.ws_h264++;
    sock.on('close', () => { h264Clients.delete(sock); viewers.ws_h264--; });
  } else sock.destroy();
});
// MOCK_REINIT_S=N: every N s, send every /ws/fmp4 client a fresh init (as a resolution change would).
if (process.env.MOCK_REINIT_S) {
  setInterval(() => {
    for (const sock of fmp4Clients) {
      wsSend(sock, Buffer.from(JSON.stringify({ type: 'init', codec: 'avc1.42c01f', width: W, height: H, fps: FPS })), 1);
      wsSend(sock, init, 2);
      for (const f of gop) wsSend(sock, f, 2);
    }
  }, Number(process.env.MOCK_REINIT_S) * 1000);
}
server.listen(port, '127.0.0.1', () => console.log(`mock pinholed on http://127.0.0.1:${port}/`));
const bye = () => { ff.kill(); ff2.kill(); ff3.kill(); process.exit(0); };
process.on('SIGTERM', bye);
process.on('SIGINT', bye);
