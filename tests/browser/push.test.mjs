// The push panel against a real media server (nginx with Debian's
// libnginx-mod-rtmp, as the Rust push tests use): on a phone-sized page
// the admin adds a target with the URL and the key in separate fields,
// sees it connect (ffprobe reads what we pushed), never sees the key again
// anywhere in the page, turns it off and on, sees the error and the
// reconnect countdown when the server dies, clears the error and removes it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, resultsDir } from './lib.mjs';

const KEY = 'browser-push-key-0123456789';
const MODULE = '/usr/lib/nginx/modules/ngx_rtmp_module.so';

let daemon;
let ctx;
let nginx;
let rtmpPort;
const nginxDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-nginx-rtmp-'));

async function startNginx(port) {
  assert.ok(fs.existsSync(MODULE), `${MODULE} missing: run ci/install-deps.sh (libnginx-mod-rtmp)`);
  fs.writeFileSync(path.join(nginxDir, 'nginx.conf'), `load_module ${MODULE};
daemon off;
pid ${nginxDir}/nginx.pid;
error_log ${nginxDir}/error.log info;
events { worker_connections 64; }
rtmp { server { listen 127.0.0.1:${port}; chunk_size 4096;
  application live { live on; record off; } } }
`);
  const proc = spawn('nginx', ['-p', nginxDir, '-c', path.join(nginxDir, 'nginx.conf')], { stdio: 'ignore' });
  const exited = new Promise((r) => proc.once('exit', r));
  const up = await waitFor(() => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  }), { timeoutMs: 10000, everyMs: 100 });
  assert.ok(up, 'nginx-rtmp listens');
  return { stop: async () => { proc.kill('SIGTERM'); await exited; } };
}

before(async () => {
  rtmpPort = await freePort();
  nginx = await startNginx(rtmpPort);
  daemon = await startDaemon(await freePort(), {
    extraArgs: ['--width', '320', '--height', '180', '--fps', '15'],
  });
  // A phone: 390 px wide, touch.
  ctx = await launchBrowser({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true });
});

after(async () => {
  await ctx?.close();
  await daemon?.stop();
  await nginx?.stop().catch(() => {});
  fs.rmSync(nginxDir, { recursive: true, force: true });
});

const row = (page) => page.locator('#push-list .push-item').first();
const stateText = (page) => row(page).locator('.push-state').textContent();

test('push panel: add with a key, connected, off/on, error with countdown, clear, remove', async () => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/`);
    // Not for viewers: the panel stays hidden until the admin logs in.
    await page.waitForTimeout(500);
    assert.equal(await page.locator('#push').isVisible(), false, 'hidden for a viewer');
    const setup = await page.request.post(`${daemon.base}/api/auth/setup`, {
      data: { password: 'correct horse battery staple' },
      headers: { Origin: daemon.base },
    });
    assert.equal(setup.status(), 200, await setup.text());
    await page.reload();
    await page.locator('#push > summary').click();
    assert.ok(await waitFor(() => page.locator('#push-empty').isVisible()), 'empty list shown');

    // Add: the URL and the key in their own fields.
    await page.fill('#push-url', `rtmp://127.0.0.1:${rtmpPort}/live`);
    await page.fill('#push-key', KEY);
    await page.click('#push-add');
    const connected = await waitFor(async () => (await stateText(page)) === 'Connected', { timeoutMs: 20000 });
    assert.ok(connected, `state: ${await stateText(page)}`);
    assert.equal(await page.inputValue('#push-key'), '', 'the key field is emptied');
    assert.equal(await row(page).locator('.push-url').textContent(), `rtmp://127.0.0.1:${rtmpPort}/live/***789`);
    const { stdout } = await promisify(execFile)('ffprobe', [
      '-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width,height', '-of', 'csv=p=0',
      `rtmp://127.0.0.1:${rtmpPort}/live/${KEY}`,
    ], { timeout: 20000 });
    assert.equal(stdout.trim(), 'h264,320,180');
    // Bytes count up in the row.
    assert.ok(await waitFor(async () => /[1-9][\d.]* [kM]B sent/.test(await row(page).locator('.push-detail').textContent())));
    // Nothing in the page holds the key.
    assert.ok(!(await page.content()).includes(KEY.slice(0, 12)), 'key in the page');
    // Fits a phone: no sideways scrolling.
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no horizontal overflow');
    await page.screenshot({ path: path.join(resultsDir, 'push-panel-phone.png'), fullPage: true });

    // Off and on again.
    await row(page).locator('.push-toggle').click();
    assert.ok(await waitFor(async () => (await stateText(page)) === 'Off'), 'turned off');
    await row(page).locator('.push-toggle').click();
    assert.ok(await waitFor(async () => (await stateText(page)) === 'Connected', { timeoutMs: 20000 }), 'on again');

    // The server dies: the last error and a countdown to the next try.
    await nginx.stop();
    const retrying = await waitFor(async () => /^Retrying in \d+ s$/.test(await stateText(page)), { timeoutMs: 20000 });
    assert.ok(retrying, `state: ${await stateText(page)}`);
    const err = await row(page).locator('.push-err').textContent();
    assert.match(err, /^Last error: /);
    assert.ok(!err.includes(KEY), err);
    // Off (so no new failure), the error stays until cleared.
    await row(page).locator('.push-toggle').click();
    assert.ok(await waitFor(async () => (await stateText(page)) === 'Off'), 'off after the failure');
    assert.match(await row(page).locator('.push-err').textContent(), /^Last error: /);
    await row(page).locator('.push-clear').click();
    assert.ok(await waitFor(async () => (await row(page).locator('.push-err').textContent()) === ''), 'error cleared');
    assert.equal(await row(page).locator('.push-clear').isVisible(), false);

    // A bad URL is refused with the reason, next to the form.
    await page.fill('#push-url', 'ftp://example.org/x');
    await page.click('#push-add');
    assert.ok(await waitFor(async () => /Not added: .*scheme/.test(await page.locator('#push-msg').textContent())));

    await row(page).locator('.push-remove').click();
    assert.ok(await waitFor(() => page.locator('#push-empty').isVisible()), 'removed');

    // A private CA: refused for a target without TLS, kept for rtmps://.
    const caDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-push-ca-'));
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
      '-nodes', '-days', '2', '-subj', '/CN=panel test CA', '-keyout', path.join(caDir, 'ca.key'),
      '-out', path.join(caDir, 'ca.pem')]);
    await page.locator('#push-ca-box > summary').click();
    await page.setInputFiles('#push-ca-file', path.join(caDir, 'ca.pem'));
    // The page reads the file asynchronously (File.text()).
    assert.ok(await waitFor(async () => /BEGIN CERTIFICATE/.test(await page.inputValue('#push-ca'))), 'the file fills the field');
    await page.fill('#push-url', `rtmp://127.0.0.1:${rtmpPort}/live`);
    await page.fill('#push-key', KEY);
    await page.click('#push-add');
    assert.ok(await waitFor(async () => /Not added: .*rtmps:\/\//.test(await page.locator('#push-msg').textContent())));
    await page.fill('#push-url', 'rtmps://127.0.0.1:9/live');
    await page.click('#push-add');
    assert.ok(await waitFor(async () => / · own CA/.test(await row(page).locator('.push-detail').textContent())), 'own CA listed');
    assert.equal(await page.inputValue('#push-ca'), '', 'the CA field is emptied');
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no horizontal overflow (CA box)');
    await row(page).locator('.push-remove').click();
    assert.ok(await waitFor(() => page.locator('#push-empty').isVisible()), 'removed (CA)');
    fs.rmSync(caDir, { recursive: true, force: true });
    const errors = page.logs.filter((l) => l.startsWith('[pageerror]'));
    assert.deepEqual(errors, []);
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});
