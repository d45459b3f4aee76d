// With a failing source the page says so ("no camera: <reason>" from /api/status), instead of spinning.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, resultsDir } from './lib.mjs';

const mock = process.env.PINHOLED === 'mock';
let daemon;
let ctx;
before(async () => {
  if (mock) return;
  // A pipe source whose command cannot run: the daemon serves, the source reports its error.
  daemon = await startDaemon(await freePort(), { extraArgs: ['--source', 'pipe:/nonexistent/pinhole-camera'] });
  ctx = await launchBrowser();
});
after(async () => {
  await ctx?.close();
  await daemon?.stop();
});

test('a failed source shows "no camera: <reason>"', { skip: mock && 'needs the real pinholed' }, async (t) => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/`);
    const text = await waitFor(() => page.evaluate(() => {
      const s = document.getElementById('state');
      return !s.hidden && s.textContent.includes('no camera:') ? s.textContent.trim() : null;
    }), { timeoutMs: 15000 });
    assert.ok(text, `no "no camera" message; state: ${await page.locator('#state').innerText()}`);
    assert.match(text, /pinhole-camera/); // the reason names the failing command
    t.diagnostic(text);
    await page.screenshot({ path: path.join(resultsDir, 'nocamera-1280x800.png') });
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});
