// Firmware panel: the running version and slot, and an update upload with a
// progress bar. Bytes sent come from XHR upload progress; the install phases
// (writing, verifying, staged, rebooting) come from /api/update/events (SSE).

import { el, fmtBytes } from './dom.js';

async function getJson(url) {
  const r = await fetch(url, { cache: 'no-store' });
  let body = null;
  try { body = await r.json(); } catch { /* not JSON */ }
  return { ok: r.ok, status: r.status, body };
}

export function mountFirmware(parent) {
  const version = el('span', { class: 'fw-value', id: 'fw-version', text: '…' });
  const slot = el('span', { class: 'fw-value', id: 'fw-slot', text: '…' });
  const file = el('input', { type: 'file', id: 'fw-file', accept: '.phb,.bundle,application/octet-stream' });
  const install = el('button', { type: 'button', id: 'fw-install', disabled: '' }, 'Install update');
  const bar = el('progress', { id: 'fw-progress', max: '1', value: '0', hidden: '' });
  const msg = el('p', { class: 'fw-msg', id: 'fw-msg', role: 'status', 'aria-live': 'polite' });
  const panel = el('details', { class: 'panel', id: 'firmware' },
    el('summary', {}, 'Firmware'),
    el('dl', { class: 'fw-facts' },
      el('dt', { text: 'Version' }), el('dd', {}, version),
      el('dt', { text: 'Slot' }), el('dd', {}, slot)),
    el('div', { class: 'fw-row' }, file, install),
    bar, msg);
  parent.append(panel);

  let configured = false;
  let busy = false;
  // After an upload in this page, its own (more specific) result stays shown.
  let reported = false;
  const say = (text, kind = '') => { msg.textContent = text; msg.dataset.kind = kind; };

  async function refresh() {
    const s = await getJson('api/status').catch(() => null);
    if (s?.ok) version.textContent = s.body.version ?? '?';
    const u = await getJson('api/update').catch(() => null);
    if (!u) return;
    configured = u.ok;
    if (!u.ok) {
      slot.textContent = '—';
      if (!busy) say(u.body?.error ?? 'updates are not available', 'muted');
      install.disabled = true;
      return;
    }
    const st = u.body;
    if (st.version) version.textContent = st.version;
    slot.textContent = `${st.active_slot}${st.trial ? ' (trial: checking health)' : ''}`;
    install.disabled = busy || !file.files.length;
    if (!busy && !reported && st.phase === 'failed' && st.error) say(`Last update failed: ${st.error}`, 'error');
  }

  file.addEventListener('change', () => {
    install.disabled = busy || !configured || !file.files.length;
    if (file.files.length) say(`${file.files[0].name}, ${fmtBytes(file.files[0].size)}`);
  });

  install.addEventListener('click', () => {
    const f = file.files[0];
    if (!f || busy) return;
    busy = true;
    install.disabled = true;
    file.disabled = true;
    bar.hidden = false;
    bar.max = f.size;
    bar.value = 0;
    say('Uploading…');

    // Install phases, as the daemon reports them.
    const events = new EventSource('api/update/events');
    events.onmessage = (ev) => {
      try {
        const st = JSON.parse(ev.data);
        if (st.phase.startsWith('writing') || st.phase === 'verifying') {
          say(`${st.phase[0].toUpperCase()}${st.phase.slice(1)}… ${fmtBytes(st.bytes)}${st.total ? ` of ${fmtBytes(st.total)}` : ''}`);
        }
      } catch { /* ignore a malformed event */ }
    };

    const xhr = new XMLHttpRequest();
    xhr.open('POST', 'api/update');
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = (e) => {
      bar.value = e.loaded;
      const pct = e.total ? Math.floor((100 * e.loaded) / e.total) : 0;
      say(`Uploading ${fmtBytes(e.loaded)} of ${fmtBytes(e.total || f.size)} (${pct} %)`);
    };
    const done = (ok, text) => {
      events.close();
      busy = false;
      reported = true;
      file.disabled = false;
      say(text, ok ? 'ok' : 'error');
      if (!ok) { bar.hidden = true; install.disabled = !file.files.length; }
      refresh();
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch { /* keep {} */ }
      if (xhr.status === 200) {
        bar.value = bar.max;
        done(true, 'Installed and verified. The camera restarts into the new version for a trial run; '
          + 'if it is not healthy within a few minutes it returns to this version by itself. This page reconnects on its own.');
        waitForReturn();
      } else {
        const why = body.error ?? `HTTP ${xhr.status}`;
        const hint = {
          403: 'The bundle is not signed by a key this camera trusts.',
          409: 'Another update is running, or the camera is still checking a new version.',
          422: 'The bundle does not fit this camera (board or version).',
          400: 'The file is damaged or incomplete.',
        }[xhr.status] ?? '';
        done(false, `Update refused: ${why}${hint ? ` — ${hint}` : ''} Nothing was changed.`);
      }
    };
    xhr.onerror = () => done(false, 'The upload was interrupted; nothing was changed. Try again.');
    xhr.send(f);
  });

  // After the reboot: wait for the daemon, then tell what it runs now.
  async function waitForReturn() {
    const before = version.textContent;
    const current = async () => (await getJson('api/update').catch(() => null))?.body?.version;
    for (let i = 0; i < 120; i++) {
      await new Promise((r) => setTimeout(r, 5000));
      const s = await getJson('api/status').catch(() => null);
      if (s?.ok && s.body.uptime_s < 600) {
        await refresh();
        const now = (await current()) ?? s.body.version;
        say(now !== before
          ? `Now running ${now}.`
          : `Still running ${before}: the new version did not prove healthy and was rolled back.`,
        now !== before ? 'ok' : 'error');
        return;
      }
    }
  }

  refresh();
  setInterval(() => { if (panel.open && !busy) refresh(); }, 5000);
  return panel;
}

mountFirmware(document.querySelector('main'));
