// The page survives a daemon restart: it reconnects by itself, without a reload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, videoState, sleep, resultsDir } from './lib.mjs';

let daemon;
let ctx;
before(async () => {
  daemon = await startDaemon(await freePort());
  ctx = await launchBrowser();
});
after(async () => {
  await ctx?.close();
  await daemon?.stop();
});

test('MSE player resumes after pinholed is killed and restarted', async (t) => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/?player=mse`);
    await page.evaluate(() => { window.__loaded = performance.timeOrigin; });
    assert.ok(await waitFor(() => page.evaluate(() => window.pinhole.stats().state === 'playing'), { timeoutMs: 15000 }), 'never played');
    await sleep(1000);

    const port = daemon.port;
    await daemon.stop('SIGKILL');
    const down = await waitFor(() => page.evaluate(() => {
      const s = document.getElementById('state');
      return !s.hidden && /reconnecting in \d+ s/.test(s.textContent) ? s.textContent.trim() : null;
    }), { timeoutMs: 8000 });
    assert.ok(down, 'no "reconnecting in N s" shown after the daemon died');
    t.diagnostic(`while down: "${down}"`);
    await page.screenshot({ path: path.join(resultsDir, 'reconnecting-1280x800.png') });
    await sleep(1500);

    daemon = await startDaemon(port);
    const before = (await videoState(page)).currentTime;
    const resumed = await waitFor(async () => {
      const s = await page.evaluate(() => window.pinhole.stats());
      const v = await videoState(page);
      return s.state === 'playing' && v.currentTime > before + 1 ? { s, v } : null;
    }, { timeoutMs: 20000 });
    assert.ok(resumed, `did not resume: ${JSON.stringify(await page.evaluate(() => window.pinhole.stats()))}`);
    const a = await videoState(page);
    await sleep(2000);
    const b = await videoState(page);
    assert.ok(b.currentTime - a.currentTime > 1.2, `not advancing after reconnect (${a.currentTime} -> ${b.currentTime})`);
    assert.ok(b.frames > a.frames, 'no new frames decoded after reconnect');
    assert.ok(await page.evaluate(() => window.__loaded === performance.timeOrigin), 'the page was reloaded');
    assert.ok(await page.evaluate(() => document.getElementById('state').hidden), 'state message still shown');
    t.diagnostic(`resumed: delay ${resumed.s.delay?.toFixed(3)} s (${resumed.s.delaySource})`);
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});
