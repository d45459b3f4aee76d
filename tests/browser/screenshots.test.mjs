// Screenshots of the page, desktop and phone, into results/ (for a person to look at).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, sleep, resultsDir } from './lib.mjs';

let daemon;
before(async () => { daemon = await startDaemon(await freePort()); });
after(async () => { await daemon?.stop(); });

const VIEWS = [
  { name: 'desktop-1280x800', viewport: { width: 1280, height: 800 } },
  { name: 'phone-390x844', viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
];

for (const v of VIEWS) {
  test(`screenshot ${v.name}`, async (t) => {
    const { name, ...opts } = v;
    const ctx = await launchBrowser(opts);
    const page = await newPage(ctx);
    try {
      await page.goto(`${daemon.base}/?stats=1`);
      assert.ok(await waitFor(() => page.evaluate(() => window.pinhole.stats().state === 'playing'), { timeoutMs: 15000 }), 'never played');
      await sleep(2500); // let fps/bitrate/viewers settle
      const file = path.join(resultsDir, `${name}.png`);
      await page.screenshot({ path: file });
      // Video fills the width on the phone; no horizontal scrolling anywhere.
      const m = await page.evaluate(() => ({
        scrollW: document.documentElement.scrollWidth,
        winW: innerWidth,
        stageW: document.getElementById('stage').getBoundingClientRect().width,
        controlsBottom: document.querySelector('.controls').getBoundingClientRect().bottom,
        winH: innerHeight,
      }));
      t.diagnostic(`${file} ${JSON.stringify(m)}`);
      assert.ok(m.scrollW <= m.winW, 'page scrolls horizontally');
      if (v.isMobile) assert.equal(Math.round(m.stageW), m.winW, 'video not full width on the phone');
      assert.ok(m.controlsBottom <= m.winH, 'controls are below the fold');
    } catch (e) {
      console.log(page.logs.join('\n'));
      throw e;
    } finally {
      await ctx.close();
    }
  });
}
