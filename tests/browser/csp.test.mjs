// The pages' Content-Security-Policy (docs/security.md "Security headers") lets every
// player work: no violation reported while each plays, and the headers are there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, videoState } from './lib.mjs';

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

const violations = (page) => page.logs.filter((l) => /Content Security Policy|Refused to/i.test(l));

async function watch(page) {
  // Violations also reach the page as events (some never reach the console).
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
}

test('the UI is served with the security headers', async () => {
  const r = await fetch(`${daemon.base}/`);
  assert.match(r.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  assert.match(r.headers.get('content-security-policy') ?? '', /frame-ancestors 'self'/);
  assert.equal(r.headers.get('x-frame-options'), 'SAMEORIGIN');
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
});

for (const player of ['webcodecs', 'mse', 'hls', 'dash', 'mjpeg']) {
  test(`player ${player} plays under the policy`, async () => {
    const page = await newPage(ctx);
    await watch(page);
    try {
      await page.goto(`${daemon.base}/?player=${player}&stats=1`);
      const playing = await waitFor(() => page.evaluate(() => window.pinhole?.stats().state === 'playing'),
        { timeoutMs: 25000 });
      assert.ok(playing, `${player} never reached "playing": ${JSON.stringify(await page.evaluate(() => window.pinhole?.stats()))}`);
      const events = await page.evaluate(() => window.cspViolations);
      assert.deepEqual(events, [], `CSP violations: ${events}`);
      assert.deepEqual(violations(page), []);
    } catch (e) {
      console.log(page.logs.join('\n'));
      throw e;
    } finally {
      await page.close();
    }
  });
}

test('jmuxer.html plays under the policy', async () => {
  const page = await newPage(ctx);
  await watch(page);
  try {
    await page.goto(`${daemon.base}/jmuxer.html`);
    const ok = await waitFor(async () => (await videoState(page))?.frames > 10, { timeoutMs: 20000 });
    assert.ok(ok, `no frames: ${JSON.stringify(await videoState(page))}`);
    const events = await page.evaluate(() => window.cspViolations);
    assert.deepEqual(events, [], `CSP violations: ${events}`);
    assert.deepEqual(violations(page), []);
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});
