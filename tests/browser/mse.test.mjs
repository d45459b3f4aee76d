// `/` plays live via MSE from /ws/fmp4, close to the live edge.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, startDaemon, launchBrowser, newPage, waitFor, videoState, sleep } from './lib.mjs';

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

test('/ plays via MSE with < 1 s delay', async (t) => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/?player=mse&stats=1`);
    assert.equal(await page.title(), 'pinhole');
    const playing = await waitFor(() => page.evaluate(() => window.pinhole?.stats().state === 'playing'), { timeoutMs: 15000 });
    assert.ok(playing, `player never reached "playing": ${JSON.stringify(await page.evaluate(() => window.pinhole?.stats()))}`);
    const a = await videoState(page);
    // Sample the delay estimate through the 3 s; judge the median (one hiccup of a loaded
    // machine is not the player's delay), report the worst.
    const delays = [];
    for (let i = 0; i < 12; i++) {
      await sleep(250);
      delays.push(await page.evaluate(() => window.pinhole.stats().delay));
    }
    const b = await videoState(page);
    const s = await page.evaluate(() => window.pinhole.stats());
    const sorted = delays.filter((d) => d != null).sort((x, y) => x - y);
    const median = sorted[Math.floor(sorted.length / 2)];
    t.diagnostic(`delay median ${median?.toFixed(3)} s, max ${sorted.at(-1)?.toFixed(3)} s over ${sorted.length} samples`);
    t.diagnostic(`currentTime +${(b.currentTime - a.currentTime).toFixed(2)} s, frames ${a.frames} -> ${b.frames}, ` +
      `delay ${s.delay?.toFixed(3)} s (${s.delaySource}), buffer ${s.buffer?.toFixed(3)} s, fps ${s.fps?.toFixed(1)}, ` +
      `bitrate ${(s.bitrate / 1e6).toFixed(2)} Mbit/s, ${s.width}x${s.height}, jumps ${s.jumps}, viewers ${s.viewers}`);
    assert.equal(b.error, null);
    assert.ok(b.currentTime - a.currentTime > 2, `currentTime advanced only ${b.currentTime - a.currentTime} s in 3 s`);
    assert.ok(b.frames > a.frames, `decoded frames did not grow (${a.frames} -> ${b.frames})`);
    assert.equal(sorted.length, delays.length, 'no delay estimate');
    assert.ok(median < 1, `delay median ${median} s (${s.delaySource}); samples ${delays}`);
    assert.ok(sorted[0] > -0.5, `delay ${sorted[0]} s is implausibly negative (clock or prft mapping wrong)`);
    assert.equal(s.delaySource, 'prft', 'pinholed sends prft boxes, the delay should come from them');
    assert.equal(s.width, 1280);
    assert.equal(s.height, 720);
    // The overlay shows the same numbers a person sees.
    const overlay = await page.locator('#stats').innerText();
    assert.match(overlay, /delay\s+\d+ ms/);
    assert.match(overlay, /1280×720/);
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});

// Paced (the default): each fragment is appended on the animation frame its due time gives it,
// and the element, always waiting for more, shows it at once; so every frame is the same age
// when it goes on screen (within a refresh), where appending on arrival puts consecutive frames
// a refresh apart (bench/README.md). Judged by rVFC: presentation time − capture time (prft).
async function ages(page, ms) {
  return page.evaluate((ms) => new Promise((resolve) => {
    const p = window.pinhole.player;
    const v = document.querySelector('#screen video');
    const out = [];
    const cb = (_now, m) => {
      const cap = p._wallclockAt(m.mediaTime);
      if (cap != null) out.push(m.presentationTime + performance.timeOrigin - cap);
      v.requestVideoFrameCallback(cb);
    };
    v.requestVideoFrameCallback(cb);
    setTimeout(() => resolve(out), ms);
  }), ms);
}

test('MSE paces frames: each is the same age on screen', async (t) => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/?player=mse`);
    const paced = await waitFor(() => page.evaluate(() => window.pinhole?.player?.pacer?.delay != null), { timeoutMs: 20000 });
    assert.ok(paced, `pacing never started: ${JSON.stringify(await page.evaluate(() => window.pinhole?.stats()))}`);
    await sleep(3000); // the first paced frames may still be catching up with the start-up burst
    // Judged between the pacer's moves: a move changes every frame's age by a refresh, once
    // (a loaded machine may need one); the failure looked for is ages alternating frame to frame.
    let a = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const moves = await page.evaluate(() => window.pinhole.player.pacer.moves);
      a = await ages(page, 4000);
      if (await page.evaluate((m) => window.pinhole.player.pacer.moves === m, moves)) break;
      t.diagnostic(`the pacer moved during attempt ${attempt + 1}; again`);
    }
    const s = await page.evaluate(() => window.pinhole.stats());
    const sorted = [...a].sort((x, y) => x - y);
    const med = sorted[Math.floor(sorted.length / 2)];
    const near = a.filter((x) => Math.abs(x - med) <= 6).length / a.length;
    t.diagnostic(`${a.length} frames in 4 s; age p5/p50/p95 ${[0.05, 0.5, 0.95].map((q) => sorted[Math.floor(q * sorted.length)]?.toFixed(1)).join('/')} ms; ` +
      `${(100 * near).toFixed(0)} % within 6 ms of the median; ${s.render}, late ${s.lateFrames} slipped ${s.slippedFrames}`);
    assert.equal(s.render, 'paced');
    assert.equal(s.pacingOff, null);
    assert.ok(a.length >= 90, `only ${a.length} frames presented in 4 s`);
    // Appending on arrival (?render=immediate) puts ~20 % within 6 ms; paced runs 95–100 % on a
    // quiet machine and 78 % was seen with the load at 9 on 2 cores, hence 0.65.
    assert.ok(near >= 0.65, `only ${(100 * near).toFixed(0)} % of frames within 6 ms of the median age (${med.toFixed(1)} ms)`);
    assert.ok(s.slippedFrames < 0.25 * s.decodedFrames, `${s.slippedFrames} frames slipped a refresh`);
  } catch (e) {
    console.log(page.logs.join('\n'));
    throw e;
  } finally {
    await page.close();
  }
});

test('?render=immediate: MSE appends on arrival and still plays', async () => {
  const page = await newPage(ctx);
  try {
    await page.goto(`${daemon.base}/?player=mse&render=immediate`);
    assert.ok(await waitFor(() => page.evaluate(() => window.pinhole?.stats().state === 'playing'), { timeoutMs: 15000 }));
    await sleep(3000);
    const s = await page.evaluate(() => window.pinhole.stats());
    assert.equal(s.render, 'immediate');
    assert.equal(await page.evaluate(() => window.pinhole.player.pacer.delay), null, 'the pacer never ran');
    assert.ok(s.fps > 20, `fps ${s.fps}`);
  } finally {
    await page.close();
  }
});
