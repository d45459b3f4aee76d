// The firmware panel: upload a signed bundle, watch the progress bar, read
// the result; a bundle signed by an unknown key is refused with a reason.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, repoRoot, resultsDir } from './lib.mjs';

const BUNDLE = process.env.PINHOLE_BUNDLE || path.join(repoRoot, 'target/release/pinhole-bundle');

let daemon;
let ctx;
let dir;

function tool(...args) {
  return execFileSync(BUNDLE, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

before(async () => {
  assert.ok(fs.existsSync(BUNDLE), `${BUNDLE} missing: cargo build --release -p pinhole-ota`);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-fw-'));
  const rnd = (n) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7919) & 0xff));
  fs.writeFileSync(path.join(dir, 'boot.img'), rnd(1 << 20));
  fs.writeFileSync(path.join(dir, 'root.img'), rnd(6 << 20));
  tool('keygen', '--out', 'keys');
  tool('keygen', '--out', 'other');
  const create = (key, out) => tool('create', '--key', key, '--board', 'qemu-arm64', '--version', '1.1.0',
    '--boot', 'boot.img', '--root', 'root.img', '-o', out);
  create('keys/pinhole-bundle.key', 'good.phb');
  create('other/pinhole-bundle.key', 'forged.phb');
  // The "device": partitions as files, the bootsel directory, a kernel cmdline.
  for (const n of ['boot_a', 'root_a']) fs.writeFileSync(path.join(dir, n), `ACTIVE ${n}`.repeat(1000));
  for (const n of ['boot_b', 'root_b']) fs.writeFileSync(path.join(dir, n), Buffer.alloc(4096));
  fs.mkdirSync(path.join(dir, 'bootsel'));
  fs.writeFileSync(path.join(dir, 'bootsel/slot.txt'), 'boot_slot=a\n');
  fs.writeFileSync(path.join(dir, 'cmdline'), 'ro pinhole.slot=a pinhole.trial=0\n');
  fs.writeFileSync(path.join(dir, 'version'), '1.0.0\n');
  fs.writeFileSync(path.join(dir, 'pinhole.toml'), `
[video]
width = 640
height = 360
[ota]
enabled = true
board = "qemu-arm64"
public_keys = ["${dir}/keys/pinhole-bundle.pub"]
boot = "file"
bootsel_dir = "${dir}/bootsel"
slots_dir = "${dir}"
version_file = "${dir}/version"
cmdline = "${dir}/cmdline"
reboot = false
`);
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

test('firmware panel: a forged bundle is refused, a signed one is installed with progress', async (t) => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/`);
    // Updates are an admin action: set the admin password (first boot), which logs us in.
    const setup = await page.request.post(`${daemon.base}/api/auth/setup`, {
      data: { password: 'correct horse battery staple' },
      headers: { Origin: daemon.base },
    });
    assert.equal(setup.status(), 200, await setup.text());
    await page.reload();
    await page.locator('#firmware > summary').click();
    await waitFor(() => page.evaluate(() => document.querySelector('#fw-slot').textContent === 'a'));
    assert.equal(await page.locator('#fw-version').textContent(), '1.0.0', 'the system version, from the version file');

    await page.setInputFiles('#fw-file', path.join(dir, 'forged.phb'));
    await page.locator('#fw-install').click();
    const refused = await waitFor(() => page.evaluate(() => {
      const m = document.querySelector('#fw-msg');
      return m.dataset.kind === 'error' && m.textContent;
    }), { timeoutMs: 15000 });
    assert.match(refused, /refused/i);
    assert.match(refused, /not signed by a key this camera trusts/);
    assert.ok(!fs.existsSync(path.join(dir, 'bootsel/tryboot.txt')), 'no trial armed');

    await page.setInputFiles('#fw-file', path.join(dir, 'good.phb'));
    await page.locator('#fw-install').click();
    const ok = await waitFor(() => page.evaluate(() => {
      const m = document.querySelector('#fw-msg');
      return m.dataset.kind === 'ok' && m.textContent;
    }), { timeoutMs: 30000 });
    assert.match(ok, /Installed and verified/);
    const [value, max] = await page.evaluate(() => [document.querySelector('#fw-progress').value, document.querySelector('#fw-progress').max]);
    assert.equal(value, max, 'progress bar full');
    assert.match(fs.readFileSync(path.join(dir, 'bootsel/tryboot.txt'), 'utf8'), /try_slot=b/);
    assert.ok(fs.readFileSync(path.join(dir, 'root_b')).subarray(0, 6 << 20)
      .equals(fs.readFileSync(path.join(dir, 'root.img'))), 'root image written to slot b');
    await page.locator('#firmware').screenshot({ path: path.join(resultsDir, 'firmware-panel.png') });
    t.diagnostic(ok);
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});
