// The camera settings panel: disabled with a hint until an admin logs in;
// a refused value is shown next to its field; a valid change restarts the
// stream at the new size and is saved to the config file; the HTTPS switch.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, resultsDir } from './lib.mjs';

let daemon;
let ctx;
let dir;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-settings-'));
  fs.writeFileSync(path.join(dir, 'pinhole.toml'), 'source = "test"\n[video]\nwidth = 320\nheight = 180\nfps = 10\n');
  fs.mkdirSync(path.join(dir, 'data'));
  daemon = await startDaemon(await freePort(), {
    extraArgs: ['--config', path.join(dir, 'pinhole.toml'), '--data-dir', path.join(dir, 'data')],
  });
  ctx = await launchBrowser();
});

after(async () => {
  await ctx?.close();
  await daemon?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('settings panel: admin only, errors by the field, applies and saves', async (t) => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/`);
    await page.locator('#settings > summary').click();
    await waitFor(() => page.evaluate(() => !!document.querySelector('#set-width')));
    assert.equal(await page.locator('#set-login-hint').isVisible(), true, 'login hint shown');
    assert.equal(await page.locator('#set-width').isDisabled(), true, 'form disabled when not admin');
    assert.equal(await page.locator('#set-rotation').isDisabled(), true, 'rotation unsupported');
    await page.screenshot({ path: path.join(resultsDir, 'settings-logged-out.png'), fullPage: true });

    const setup = await page.request.post(`${daemon.base}/api/auth/setup`, {
      data: { password: 'correct horse battery staple' },
      headers: { Origin: daemon.base },
    });
    assert.equal(setup.status(), 200, await setup.text());
    await page.reload();
    await page.locator('#settings > summary').click();
    await waitFor(() => page.evaluate(() => document.querySelector('#set-video') && !document.querySelector('#set-video').disabled));
    assert.equal(await page.locator('#set-login-hint').isVisible(), false);

    // A refused value: the reason next to the field, nothing applied.
    await page.fill('#set-width', '321');
    await page.click('#set-apply');
    await waitFor(() => page.evaluate(() => document.querySelector('#set-width-err').textContent !== ''));
    const err = await page.locator('#set-width-err').textContent();
    assert.match(err, /16-3840 in steps of 2/);
    await page.screenshot({ path: path.join(resultsDir, 'settings-error.png'), fullPage: true });
    let cam = await (await page.request.get(`${daemon.base}/api/camera`)).json();
    assert.equal(cam.fields.width.value, 320);

    // A valid change.
    await page.fill('#set-width', '240');
    await page.fill('#set-height', '136');
    await page.click('#set-apply');
    await waitFor(() => page.evaluate(() => document.querySelector('#set-msg').dataset.kind === 'ok'));
    assert.match(await page.locator('#set-msg').textContent(), /restarted.*saved/);
    const status = await waitFor(async () => {
      const s = await (await page.request.get(`${daemon.base}/api/status`)).json();
      return s.stream?.width === 240 ? s : null;
    });
    assert.ok(status, 'stream at the new size');
    assert.match(fs.readFileSync(path.join(dir, 'pinhole.toml'), 'utf8'), /width = 240/);
    await page.locator('#settings').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(resultsDir, 'settings-panel.png'), fullPage: true });

    // The HTTPS switch sets the flag file the image's path unit watches.
    const flag = path.join(dir, 'data', 'https-enabled');
    assert.equal(await page.locator('#set-https').isDisabled(), false, 'HTTPS switch enabled for the admin');
    assert.equal(await page.locator('#set-https').isChecked(), false);
    await page.click('#set-https');
    assert.ok(await waitFor(() => fs.existsSync(flag)), 'flag file written');
    assert.ok(await waitFor(() => page.evaluate(() => /On in a few seconds/.test(document.querySelector('#set-https-msg').textContent))),
      'the page says where HTTPS will be');
    await page.click('#set-https');
    assert.ok(await waitFor(() => !fs.existsSync(flag)), 'flag file removed');
  } catch (e) {
    t.diagnostic(page.logs.join('\n'));
    throw e;
  }
});
