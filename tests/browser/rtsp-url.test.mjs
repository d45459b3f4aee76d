// The settings panel shows the RTSP URL as the page reaches the camera,
// with the port the daemon really bound; ffprobe plays that very URL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { freePort, startDaemon, launchBrowser, newPage, waitFor } from './lib.mjs';

let daemon;
let ctx;

before(async () => {
  daemon = await startDaemon(await freePort(), {
    extraArgs: ['--rtsp', '127.0.0.1:0', '--width', '320', '--height', '180', '--fps', '10'],
  });
  ctx = await launchBrowser();
});

after(async () => {
  await ctx?.close();
  await daemon?.stop();
});

test('settings panel: the RTSP URL to copy plays in ffprobe', async () => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/`);
    await page.locator('#settings > summary').click();
    await waitFor(() => page.evaluate(() => !document.querySelector('#set-rtsp-group')?.hidden));
    const url = await page.locator('#set-rtsp-url').inputValue();
    const status = await (await page.request.get(`${daemon.base}/api/status`)).json();
    assert.equal(url, `rtsp://127.0.0.1:${status.rtsp.port}/stream`);
    assert.notEqual(status.rtsp.port, 0);
    const { stdout } = await promisify(execFile)('ffprobe', [
      '-v', 'error', '-rtsp_transport', 'tcp', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', url,
    ], { timeout: 20000 });
    assert.equal(stdout.trim(), '320,180');
  } finally {
    await page.close();
  }
});
