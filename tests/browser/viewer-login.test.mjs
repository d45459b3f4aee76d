// A camera with a viewer password (docs/security.md): the live page shows a
// password prompt on the stage instead of video; a wrong password says so, the
// right one gives an HttpOnly SameSite=Strict viewer cookie and the video
// plays. On a phone-sized screen. Then the admin removes the password in the
// UI and the LAN watches freely again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, videoState, sleep, resultsDir } from './lib.mjs';

const ADMIN = 'correct horse battery staple';
const VIEWER = 'family viewer password';

let daemon;
let ctx;
let dir;

/** A request from outside the browser (its own cookies), same-origin. */
async function call(method, url, body, cookie) {
  const headers = { origin: daemon.base, 'content-type': 'application/json' };
  if (cookie) headers.cookie = cookie;
  const r = await fetch(`${daemon.base}${url}`, { method, headers, body: body && JSON.stringify(body) });
  return r;
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-viewer-'));
  fs.writeFileSync(path.join(dir, 'pinhole.toml'), 'source = "test"\n[video]\nwidth = 320\nheight = 180\nfps = 15\n');
  fs.mkdirSync(path.join(dir, 'data'));
  daemon = await startDaemon(await freePort(), {
    extraArgs: ['--config', path.join(dir, 'pinhole.toml'), '--data-dir', path.join(dir, 'data')],
  });
  // The admin sets both passwords (outside the browser, so it has no admin cookie).
  const setup = await call('POST', '/api/auth/setup', { password: ADMIN });
  assert.equal(setup.status, 200, await setup.text());
  const admin = setup.headers.get('set-cookie').split(';')[0];
  const set = await call('POST', '/api/auth/viewer/password', { password: VIEWER }, admin);
  assert.equal(set.status, 200, await set.text());
  // A phone: narrow portrait screen, touch.
  ctx = await launchBrowser({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 });
});

after(async () => {
  await ctx?.close();
  await daemon?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('viewer password: prompt on the stage, wrong then right, video plays', async (t) => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/`);
    const prompt = page.locator('#viewer-login');
    assert.ok(await waitFor(() => prompt.isVisible()), 'the prompt appears');
    assert.match(await prompt.innerText(), /Password needed to watch/);
    // It sits inside the stage and fits the phone's width.
    const box = await prompt.boundingBox();
    const stage = await page.locator('#stage').boundingBox();
    assert.ok(box.width <= 390 && box.x >= 0, `prompt ${JSON.stringify(box)}`);
    assert.ok(box.y >= stage.y - 1 && box.y + box.height <= stage.y + stage.height + 1, 'within the stage');
    assert.ok(await page.locator('#viewer-submit').isVisible());
    assert.equal(await videoState(page).then((v) => v?.frames ?? 0), 0, 'no video before login');
    // Reachable, just locked: the header must not claim otherwise.
    await sleep(2500);
    assert.doesNotMatch(await page.locator('#source-line').innerText(), /unreachable/);
    await page.screenshot({ path: path.join(resultsDir, 'viewer-login-phone.png') });

    // Wrong: a clear message, still locked, no cookie.
    await page.locator('#viewer-password').fill('not the password');
    await page.locator('#viewer-submit').tap();
    assert.ok(await waitFor(async () => /Wrong password/.test(await page.locator('#viewer-error').innerText())));
    assert.equal(await prompt.isVisible(), true);
    assert.equal((await ctx.cookies()).some((c) => c.name === 'pinhole_view'), false);

    // Right: the prompt goes, the cookie is HttpOnly + SameSite=Strict, video plays.
    await page.locator('#viewer-password').fill(VIEWER);
    await page.locator('#viewer-submit').tap();
    assert.ok(await waitFor(async () => !(await prompt.isVisible())), 'the prompt goes away');
    const cookie = (await ctx.cookies()).find((c) => c.name === 'pinhole_view');
    assert.ok(cookie, 'viewer cookie');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(cookie.secure, false, 'plain HTTP');
    // Whatever player "auto" picks (WebCodecs draws on a canvas, MSE/HLS use
    // a <video>): playing, at the stream's size, with frames still coming.
    const frames = async () => {
      const s = await page.evaluate(() => window.pinhole?.stats());
      return s?.decodedFrames ?? (await videoState(page))?.frames ?? 0;
    };
    const playing = await waitFor(() => page.evaluate(() => window.pinhole?.stats().state === 'playing'), { timeoutMs: 20000 });
    const s = await page.evaluate(() => window.pinhole?.stats());
    assert.ok(playing, `video did not play: ${JSON.stringify(s)}`);
    assert.equal(s.width, 320);
    const a = await frames();
    await sleep(1500);
    const b = await frames();
    assert.ok(b > a + 5, `frames ${a} -> ${b} in 1.5 s`);
    t.diagnostic(`player ${s.player}, frames ${a} -> ${b} in 1.5 s`);
    await page.screenshot({ path: path.join(resultsDir, 'viewer-playing-phone.png') });

    // A viewer is no admin: the admin button still offers the admin login.
    assert.equal(await page.locator('#auth-button').innerText(), 'Log in');
    const r = await page.request.put(`${daemon.base}/api/camera`, { data: {}, headers: { Origin: daemon.base } });
    assert.equal(r.status(), 401);
  } catch (e) {
    t.diagnostic(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});

test('the admin changes and removes the viewer password in the UI', async (t) => {
  const admin = await launchBrowser();
  const page = await newPage(admin);
  try {
    await page.goto(`${daemon.base}/`);
    // The admin login works from the locked page too.
    await page.locator('#auth-button').click();
    await page.locator('#login-password').fill(ADMIN);
    await page.locator('#auth-dialog button[type=submit]').click();
    assert.ok(await waitFor(async () => (await page.locator('#auth-button').innerText()).startsWith('Admin')));
    assert.ok(await waitFor(async () => !(await page.locator('#viewer-login').isVisible())), 'an admin watches');
    assert.ok(await waitFor(() => page.evaluate(() => window.pinhole?.stats().state === 'playing'), { timeoutMs: 15000 }),
      'the player connects right after the login');

    await page.locator('#auth-button').click();
    await page.locator('#auth-viewer').click();
    assert.match(await page.locator('#viewer-pw-state').innerText(), /^Set/);
    await page.screenshot({ path: path.join(resultsDir, 'viewer-password-dialog.png') });
    await page.locator('#viewer-remove').click();
    assert.ok(await waitFor(async () => !(await page.locator('#auth-dialog').isVisible())));
    const st = await (await fetch(`${daemon.base}/api/auth`)).json();
    assert.equal(st.viewer_password, false);
    assert.equal(st.may_view, true, 'the LAN watches freely again');
    assert.equal(fs.existsSync(path.join(dir, 'data', 'viewer.json')), false);

    // And sets a new one: the old viewer sessions end.
    await page.locator('#auth-button').click();
    await page.locator('#auth-viewer').click();
    await page.locator('#viewer-new').fill('another viewer pass');
    await page.locator('#viewer-repeat').fill('another viewer pass');
    await page.locator('#auth-submit').click();
    assert.ok(await waitFor(async () => !(await page.locator('#auth-dialog').isVisible())));
    const st2 = await (await fetch(`${daemon.base}/api/auth`)).json();
    assert.equal(st2.viewer_password, true);
    assert.equal(st2.may_view, false);
    const bad = await call('POST', '/api/auth/viewer/login', { password: VIEWER });
    assert.equal(bad.status, 401, 'the old viewer password no longer works');
    const good = await call('POST', '/api/auth/viewer/login', { password: 'another viewer pass' });
    assert.equal(good.status, 200);
  } catch (e) {
    t.diagnostic(page.logs.join('\n'));
    throw e;
  } finally {
    await admin.close();
  }
});
