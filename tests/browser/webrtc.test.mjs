// Auto plays WebRTC where it connects. `/?player=webrtc`: the page's WHEP client plays the daemon's 720p test pattern over WebRTC
// (Chromium's own stack against ours) with its sound (`--audio test`), survives an ICE restart
// on the same session (WHEP PATCH), stops cleanly (its session DELETEd, none left on the
// server), plays over ICE-TCP when Chromium may not use UDP, and says why when the server
// refuses it (session limit 503, viewer login 401).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, sleep, repoRoot } from './lib.mjs';

const skip = process.env.PINHOLED === 'mock' ? 'the mock daemon has no WebRTC' : false;
const OFFER = fs.readFileSync(path.join(repoRoot, 'crates/pinhole-webrtc/testdata/aiortc_offer.sdp'), 'utf8');
const ADMIN = 'webrtc admin password';

let daemon;
let ctx;
let dir;
before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pinhole-webrtc-'));
  // One session at most, so the test can fill it; WebRTC on loopback, an ephemeral port.
  fs.writeFileSync(path.join(dir, 'pinhole.toml'), '[webrtc]\nmax_sessions = 1\nlan_candidates = false\n');
  fs.mkdirSync(path.join(dir, 'data'));
  daemon = await startDaemon(await freePort(), {
    extraArgs: ['--config', path.join(dir, 'pinhole.toml'), '--data-dir', path.join(dir, 'data'),
      '--webrtc-listen', '127.0.0.1:0', '--webrtc-tcp-listen', '127.0.0.1:0', '--audio', 'test'],
  });
  // Chromium leaves loopback out of WebRTC unless told: the daemon's one candidate is 127.0.0.1.
  ctx = await launchBrowser({ extraArgs: ['--allow-loopback-in-peer-connection'] });
});
after(async () => {
  await ctx?.close();
  await daemon?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function sessions(cookie) {
  const s = await (await fetch(`${daemon.base}/api/status`, { headers: cookie ? { cookie } : {} })).json();
  return s.webrtc?.sessions;
}

/** The player's RTCPeerConnection stats we look at: inbound audio, the transport. */
const rtcStats = (page) => page.evaluate(async () => {
  const pc = window.pinhole.player.pc;
  if (!pc) return null;
  const out = { audio: null, transport: null, local: null, remote: null };
  const all = new Map();
  (await pc.getStats()).forEach((s) => {
    all.set(s.id, s);
    if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audio = s;
    if (s.type === 'transport') out.transport = s;
  });
  const pair = all.get(out.transport?.selectedCandidatePairId);
  out.local = all.get(pair?.localCandidateId)?.protocol ?? null;
  out.remote = all.get(pair?.remoteCandidateId)?.protocol ?? null;
  out.codec = out.audio ? all.get(out.audio.codecId)?.mimeType : null;
  return out;
});

const stateText = (page) => page.evaluate(() => document.getElementById('state-text')?.textContent ?? '');

test('Auto picks WebRTC where it connects', { skip }, async () => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/?player=auto`);
    assert.match(await page.locator('#player-select option[value="auto"]').textContent(), /WebRTC/);
    const playing = await waitFor(() => page.evaluate(() => window.pinhole?.stats().state === 'playing'), { timeoutMs: 15000 });
    assert.ok(playing, `never "playing": ${await stateText(page)}`);
    assert.equal(await page.evaluate(() => window.pinhole.stats().player), 'webrtc');
    assert.equal(await page.evaluate(() => localStorage.getItem('pinhole.webrtc.unreachable')), null);
    await page.evaluate(() => window.pinhole.player.stop());
    assert.ok(await waitFor(async () => (await sessions()) === 0, { timeoutMs: 3000 }), 'the session outlived the player');
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});

test('the WebRTC player plays 720p, counts frames, and DELETEs its session on stop', { skip }, async (t) => {
  const page = await newPage(ctx);
  const deletes = [];
  page.on('request', (r) => { if (r.method() === 'DELETE' && r.url().includes('/whep/')) deletes.push(r.url()); });
  try {
    await page.goto(`${daemon.base}/?player=webrtc&stats=1`);
    const playing = await waitFor(() => page.evaluate(() => window.pinhole?.stats().state === 'playing'), { timeoutMs: 15000 });
    assert.ok(playing, `never "playing": ${JSON.stringify(await page.evaluate(() => window.pinhole?.stats()))} · ${await stateText(page)}`);
    // Frames the page really presents (requestVideoFrameCallback), beside getStats' count.
    await page.evaluate(() => {
      const v = document.querySelector('video');
      window.rvfc = 0;
      const count = () => { window.rvfc++; v.requestVideoFrameCallback(count); };
      v.requestVideoFrameCallback(count);
    });
    // Sound on: the audio track plays through the <video> element.
    await page.evaluate(() => window.pinhole.player.setMuted(false));
    const a = await page.evaluate(() => window.pinhole.stats());
    const ra = await rtcStats(page);
    await sleep(3000);
    const b = await page.evaluate(() => window.pinhole.stats());
    const rb = await rtcStats(page);
    const presented = await page.evaluate(() => window.rvfc);
    const size = await page.evaluate(() => { const v = document.querySelector('video'); return [v.videoWidth, v.videoHeight]; });
    t.diagnostic(`decoded ${a.decodedFrames} -> ${b.decodedFrames} in 3 s, presented ${presented}, fps ${b.fps?.toFixed(1)}, delay estimate ${b.delay != null ? Math.round(b.delay * 1000) : '?'} ms, rtt ${b.rtt}, lost ${b.packetsLost}, codec ${b.codec}`);
    assert.equal(b.player, 'webrtc');
    assert.deepEqual(size, [1280, 720]);
    // A debug daemon on a loaded machine makes fewer than 30 fps: 10 fps is still "playing".
    assert.ok(b.decodedFrames - a.decodedFrames >= 30, `decoded ${a.decodedFrames} -> ${b.decodedFrames}`);
    assert.ok(presented >= 30, `only ${presented} frames presented in 3 s`);
    assert.match(b.codec ?? '', /H264/i);
    assert.ok(b.delay != null && b.delay < 1, `delay estimate ${b.delay}`);
    // Sound: Opus packets arrive and the browser's audio pipeline plays them out (samples
    // received grow at ~48 kHz; 50 packets/s). Half of that under load still counts.
    const pk = (rb.audio?.packetsReceived ?? 0) - (ra.audio?.packetsReceived ?? 0);
    const smp = (rb.audio?.totalSamplesReceived ?? 0) - (ra.audio?.totalSamplesReceived ?? 0);
    t.diagnostic(`audio: ${pk} packets, ${smp} samples in 3 s, concealed ${rb.audio?.concealedSamples}, codec ${rb.codec}`);
    assert.match(rb.codec ?? '', /opus/i);
    assert.ok(pk >= 75, `only ${pk} audio packets in 3 s`);
    assert.ok(smp >= 72000, `only ${smp} audio samples played in 3 s`);
    assert.ok(await page.evaluate(() => window.pinhole.player.audioState() != null), 'no sound button');
    assert.equal(await sessions(), 1);

    // ICE restart on the same session: new credentials both ways (PATCH), Chromium checks
    // and selects a pair with the new ones, the picture goes on, still one session.
    const etag = await page.evaluate(() => window.pinhole.player.etag);
    const changes = ra.transport.selectedCandidatePairChanges;
    assert.equal(await page.evaluate(() => window.pinhole.player.iceRestart()), true, 'ICE restart refused');
    assert.notEqual(await page.evaluate(() => window.pinhole.player.etag), etag, 'no new ETag');
    const restarted = await waitFor(async () => {
      const r = await rtcStats(page);
      return r.transport.selectedCandidatePairChanges > changes && r.transport.iceState === 'connected';
    }, { timeoutMs: 10000 });
    assert.ok(restarted, `no pair selected after the restart: ${JSON.stringify((await rtcStats(page)).transport)}`);
    const c = (await page.evaluate(() => window.pinhole.stats())).decodedFrames;
    await sleep(2000);
    const d = (await page.evaluate(() => window.pinhole.stats())).decodedFrames;
    assert.ok(d - c >= 20, `decoded ${c} -> ${d} in 2 s after the ICE restart`);
    assert.equal(await sessions(), 1);
    // Stop: switching player ends the session on the server.
    await page.selectOption('#player-select', 'mjpeg');
    assert.ok(await waitFor(async () => (await sessions()) === 0, { timeoutMs: 3000 }), 'the session outlived the player');
    assert.equal(deletes.length, 1, `DELETEs: ${deletes}`);
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});

test('ICE-TCP: Chromium plays over the daemon\'s passive TCP candidate when it has no UDP one', { skip }, async (t) => {
  // As behind a firewall that blocks UDP: the answer reaches the page without our UDP
  // candidate, so Chromium's ICE can only connect to our TCP port (an ICE-lite server never
  // sends checks, so no UDP path appears by itself). (Chromium's
  // --force-webrtc-ip-handling-policy=disable_non_proxied_udp still used UDP on loopback.)
  const page = await newPage(ctx);
  await page.route('**/whep', async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    const r = await route.fetch();
    const body = (await r.text()).split('\r\n').filter((l) => !/^a=candidate:\S+ \d+ udp /i.test(l)).join('\r\n');
    await route.fulfill({ response: r, body });
  });
  try {
    const st = await (await fetch(`${daemon.base}/api/status`)).json();
    assert.ok(st.webrtc.tcp_candidates.length >= 1, JSON.stringify(st.webrtc));
    await page.goto(`${daemon.base}/?player=webrtc`);
    const playing = await waitFor(() => page.evaluate(() => window.pinhole?.stats().state === 'playing'), { timeoutMs: 15000 });
    assert.ok(playing, `never "playing": ${await stateText(page)}`);
    const r = await rtcStats(page);
    const a = (await page.evaluate(() => window.pinhole.stats())).decodedFrames;
    await sleep(2000);
    const b = (await page.evaluate(() => window.pinhole.stats())).decodedFrames;
    t.diagnostic(`selected pair: ${r.local} -> ${r.remote}; decoded ${a} -> ${b} in 2 s`);
    assert.equal(r.local, 'tcp');
    assert.equal(r.remote, 'tcp');
    assert.ok(b - a >= 20, `decoded ${a} -> ${b} in 2 s over TCP`);
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.evaluate(() => window.pinhole?.player?.stop()).catch(() => {});
    await page.unroute('**/whep');
  }
  assert.ok(await waitFor(async () => (await sessions()) === 0, { timeoutMs: 3000 }), 'the session outlived the player');
});

test('refusals say why: the session limit (503), then a viewer login (401)', { skip }, async () => {
  // Another viewer holds the one session.
  const r = await fetch(`${daemon.base}/whep`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: OFFER });
  assert.equal(r.status, 201, await r.text());
  const other = new URL(r.headers.get('location'), daemon.base).href;
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/?player=webrtc`);
    const full = await waitFor(async () => /too many WebRTC viewers/.test(await stateText(page)), { timeoutMs: 8000 });
    assert.ok(full, `no clear message: "${await stateText(page)}"`);
    assert.ok(await page.locator('#state').isVisible());
    // The other viewer leaves: the player plays when started again.
    assert.equal((await fetch(other, { method: 'DELETE' })).status, 200);
    await page.evaluate(() => window.pinhole.restart());
    assert.ok(await waitFor(() => page.evaluate(() => window.pinhole.stats().state === 'playing'), { timeoutMs: 15000 }), 'did not play once a session was free');
    await page.evaluate(() => window.pinhole.player.stop());
    assert.ok(await waitFor(async () => (await sessions()) === 0, { timeoutMs: 3000 }));

    // A viewer password set meanwhile: this page has no viewer login, WHEP answers 401.
    const origin = { origin: daemon.base, 'content-type': 'application/json' };
    const setup = await fetch(`${daemon.base}/api/auth/setup`, { method: 'POST', headers: origin, body: JSON.stringify({ password: ADMIN }) });
    assert.equal(setup.status, 200, await setup.text());
    const cookie = setup.headers.get('set-cookie').split(';')[0];
    const set = await fetch(`${daemon.base}/api/auth/viewer/password`, { method: 'POST', headers: { ...origin, cookie }, body: JSON.stringify({ password: 'webrtc viewer password' }) });
    assert.equal(set.status, 200, await set.text());
    await page.evaluate(() => window.pinhole.restart());
    const login = await waitFor(async () => /viewer login is needed/.test(await stateText(page)), { timeoutMs: 8000 });
    assert.ok(login, `no clear message: "${await stateText(page)}"`);
    assert.equal(await sessions(cookie), 0);
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});
