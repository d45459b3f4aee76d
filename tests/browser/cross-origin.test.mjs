// Cross-origin viewing (cross-site WebSocket hijacking): a page served from
// another origin (another port on 127.0.0.1, as Mainsail on the printer's
// host would be) opens /ws/h264 and fetches the HLS playlist. Refused by
// default (the camera is on the LAN and viewing is free there, so without
// the Origin check any page could watch); allowed once the admin lists that
// origin in the settings panel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, resultsDir } from './lib.mjs';

let daemon;
let ctx;
let dir;
let other;
let otherBase;

// The foreign page: opens the camera's WebSocket and counts frames, and
// reads the HLS playlist with fetch (CORS).
const page = (cam) => `<!doctype html><meta charset="utf-8"><title>printer</title>
<script>
const cam = ${JSON.stringify(cam)};
window.wsResult = new Promise((resolve) => {
  let frames = 0;
  const ws = new WebSocket(cam.replace('http', 'ws') + '/ws/h264');
  ws.binaryType = 'arraybuffer';
  ws.onmessage = () => { if (++frames >= 3) { ws.close(); resolve({ frames }); } };
  ws.onerror = () => resolve({ frames, error: true });
  ws.onclose = () => resolve({ frames, closed: true });
  setTimeout(() => resolve({ frames, timeout: true }), 10000);
});
window.hlsResult = fetch(cam + '/hls/live.m3u8')
  .then(async (r) => ({ status: r.status, start: (await r.text()).slice(0, 7) }))
  .catch((e) => ({ error: String(e) }));
</script>`;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-xorigin-'));
  fs.writeFileSync(path.join(dir, 'pinhole.toml'), 'source = "test"\n[video]\nwidth = 320\nheight = 180\nfps = 15\n');
  fs.mkdirSync(path.join(dir, 'data'));
  fs.mkdirSync(path.join(dir, 'hls'));
  daemon = await startDaemon(await freePort(), {
    extraArgs: ['--config', path.join(dir, 'pinhole.toml'), '--data-dir', path.join(dir, 'data'),
      '--hls-dir', path.join(dir, 'hls')],
  });
  const port = await freePort();
  otherBase = `http://127.0.0.1:${port}`;
  other = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page(daemon.base));
  });
  await new Promise((r) => other.listen(port, '127.0.0.1', r));
  ctx = await launchBrowser();
});

after(async () => {
  await ctx?.close();
  await daemon?.stop();
  await new Promise((r) => (other ? other.close(r) : r()));
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function visitForeignPage(p) {
  await p.goto(`${otherBase}/`);
  const ws = await p.evaluate(() => window.wsResult);
  const hls = await p.evaluate(() => window.hlsResult);
  return { ws, hls };
}

test('a page from another origin cannot watch until the admin lists it', async (t) => {
  const p = await newPage(ctx);
  try {
    // Refused by default: no frame, and the playlist is not readable.
    let r = await visitForeignPage(p);
    assert.equal(r.ws.frames, 0, `WebSocket refused: ${JSON.stringify(r.ws)}`);
    assert.ok(r.hls.error, `HLS not readable cross-origin: ${JSON.stringify(r.hls)}`);

    // The camera's own page still plays.
    const own = await daemon.base;
    const setup = await p.request.post(`${own}/api/auth/setup`, {
      data: { password: 'correct horse battery staple' },
      headers: { Origin: own },
    });
    assert.equal(setup.status(), 200, await setup.text());

    // The admin lists the foreign origin in the settings panel.
    await p.goto(`${own}/`);
    await p.locator('#settings > summary').click();
    await waitFor(() => p.evaluate(() => {
      const g = document.querySelector('#set-access-group');
      return g && !g.hidden && !document.querySelector('#set-origins').disabled;
    }));
    await p.fill('#set-origins', otherBase);
    await p.click('#set-access-save');
    await waitFor(() => p.evaluate(() => document.querySelector('#set-access-msg').textContent !== ''));
    assert.equal(await p.locator('#set-access-msg').textContent(), 'Saved.');
    await p.locator('#set-access-group').scrollIntoViewIfNeeded();
    await p.screenshot({ path: path.join(resultsDir, 'settings-allowed-origins.png'), fullPage: true });
    const saved = JSON.parse(fs.readFileSync(path.join(dir, 'data', 'access.json'), 'utf8'));
    assert.deepEqual(saved.allowed_origins, [otherBase]);

    // Now the foreign page watches and reads HLS.
    r = await visitForeignPage(p);
    assert.ok(r.ws.frames >= 3, `WebSocket allowed: ${JSON.stringify(r.ws)}`);
    assert.equal(r.hls.status, 200, JSON.stringify(r.hls));
    assert.equal(r.hls.start, '#EXTM3U');
  } catch (e) {
    t.diagnostic(p.logs.join('\n'));
    throw e;
  }
});
