// Push panel (admin only): the media servers this camera publishes to
// (RTMP, SRT), each with its live state from GET /api/push, added with the
// URL and the key in separate fields (the key is sent once and never shown
// back: the daemon answers with redacted URLs only), switched on and off,
// removed, and its last error cleared. A server with a private or
// self-signed certificate (rtmps://, whip+https://) gets its CA pasted or
// loaded from a file: the daemon checks it and keeps it (its path is listed,
// the PEM is not sent back). docs/config.md, "[[push]]".

import { el, fmtBytes } from './dom.js';

const STATES = {
  publishing: 'Connected',
  connecting: 'Connecting…',
  backing_off: 'Retrying',
  disabled: 'Off',
};

async function call(method, url, body) {
  const r = await fetch(url, {
    method,
    cache: 'no-store',
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error ?? `HTTP ${r.status}`);
  return data;
}

export function mountPush(parent) {
  const list = el('ul', { class: 'push-list', id: 'push-list' });
  const empty = el('p', { class: 'set-note', id: 'push-empty', text: 'No push targets.' });
  const url = el('input', {
    type: 'url', id: 'push-url', placeholder: 'rtmp(s)://host/app  srt://host:9000?streamid=…  whip+https://host/path',
    autocomplete: 'off', spellcheck: 'false', inputmode: 'url',
  });
  const key = el('input', {
    type: 'password', id: 'push-key', placeholder: 'stream key / SRT passphrase', autocomplete: 'new-password',
  });
  const ca = el('textarea', {
    id: 'push-ca', rows: '4', spellcheck: 'false', autocomplete: 'off',
    placeholder: '-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----',
  });
  const caFile = el('input', { type: 'file', id: 'push-ca-file', accept: '.pem,.crt,.cer,text/plain' });
  caFile.addEventListener('change', async () => {
    const f = caFile.files?.[0];
    if (f) ca.value = await f.text();
    caFile.value = '';
  });
  const caBox = el('details', { class: 'push-ca', id: 'push-ca-box' },
    el('summary', {}, 'Private CA (optional)'),
    el('p', { class: 'set-note', text: 'For an rtmps:// or whip+https:// server whose certificate is not from a public CA: paste its CA (PEM) or load the file. Public servers need nothing here.' }),
    ca, caFile);
  const add = el('button', { type: 'submit', id: 'push-add' }, 'Add');
  const msg = el('p', { class: 'fw-msg', id: 'push-msg', role: 'status', 'aria-live': 'polite' });
  const form = el('form', { class: 'push-form', id: 'push-form' },
    el('label', { for: 'push-url', text: 'Server URL' }), url,
    el('label', { for: 'push-key', text: 'Key' }), key,
    caBox,
    add);
  const panel = el('details', { class: 'panel', id: 'push', hidden: '' },
    el('summary', {}, 'Push to media servers'),
    el('p', { class: 'set-note', text: 'Send the live video to a media server or platform (RTMP/RTMPS: YouTube, Twitch, Owncast, nginx-rtmp — video only; SRT: mediamtx, OBS; WHIP: Cloudflare Stream, LiveKit, mediamtx — sound goes along over SRT and WHIP). The key field is the RTMP stream key, the SRT passphrase or the WHIP bearer token. Local viewers are never affected by a slow or failing target.' }),
    list, empty, form, msg);
  parent.append(panel);

  const say = (text, kind = '') => { msg.textContent = text; msg.dataset.kind = kind; };
  let timer = null;
  let targets = [];
  // Countdowns tick between polls, from when the list arrived.
  let fetchedAt = 0;

  function row(t) {
    const state = el('span', { class: 'push-state', 'data-state': t.state });
    const detail = el('span', { class: 'push-detail' });
    const err = el('span', { class: 'push-err' });
    const toggle = el('button', { type: 'button', class: 'push-toggle' }, t.enabled ? 'Turn off' : 'Turn on');
    const clear = el('button', { type: 'button', class: 'push-clear' }, 'Clear error');
    const remove = el('button', { type: 'button', class: 'push-remove' }, 'Remove');
    const li = el('li', { class: 'push-item', 'data-id': String(t.id) },
      el('div', { class: 'push-head' }, state, el('code', { class: 'push-url', text: t.url })),
      el('div', { class: 'push-meta' }, detail, err),
      el('div', { class: 'push-actions' }, toggle, clear, remove));
    li.update = (t) => {
      const left = t.retry_in_ms == null ? null : Math.max(0, t.retry_in_ms - (Date.now() - fetchedAt));
      state.dataset.state = t.state;
      state.textContent = t.state === 'backing_off' && left != null
        ? `Retrying in ${Math.ceil(left / 1000)} s` : (STATES[t.state] ?? t.state);
      detail.textContent = `${fmtBytes(t.bytes)} sent · ${t.frames} frames`
        + (t.reconnects ? ` · ${t.reconnects} reconnects` : '')
        + (t.skipped ? ` · ${t.skipped} skipped` : '')
        + (t.tls_ca ? ' · own CA' : '')
        + (t.from === 'config' ? ' · from the config file' : '');
      err.textContent = t.last_error ? `Last error: ${t.last_error}` : '';
      clear.hidden = !t.last_error;
      toggle.textContent = t.enabled ? 'Turn off' : 'Turn on';
      // Config-file targets are changed in the file.
      remove.hidden = t.from !== 'api';
    };
    const act = async (method, body) => {
      for (const b of [toggle, clear, remove]) b.disabled = true;
      try {
        show(await call(method, `api/push/${t.id}`, body));
        say('');
      } catch (x) {
        say(x.message, 'error');
      }
      for (const b of [toggle, clear, remove]) b.disabled = false;
    };
    toggle.addEventListener('click', () => act('PATCH', { enabled: !targets.find((x) => x.id === t.id)?.enabled }));
    clear.addEventListener('click', () => act('PATCH', { clear_error: true }));
    remove.addEventListener('click', () => act('DELETE'));
    li.update(t);
    return li;
  }

  function show(data) {
    targets = data.targets ?? [];
    fetchedAt = Date.now();
    const have = new Map([...list.children].map((li) => [li.dataset.id, li]));
    for (const t of targets) {
      const li = have.get(String(t.id)) ?? row(t);
      have.delete(String(t.id));
      li.update(t);
      list.append(li); // keeps the daemon's order
    }
    for (const li of have.values()) li.remove();
    empty.hidden = targets.length > 0;
  }

  function tick() {
    for (const li of list.children) {
      const t = targets.find((x) => String(x.id) === li.dataset.id);
      if (t) li.update(t);
    }
  }

  async function load() {
    try {
      show(await call('GET', 'api/push'));
      panel.hidden = false;
    } catch {
      panel.hidden = true; // not the admin, or no push in this daemon
    }
  }

  function poll(on) {
    clearInterval(timer);
    timer = null;
    if (!on) return;
    let n = 0;
    timer = setInterval(() => {
      if (document.hidden) return;
      // Countdown every second, the list every other.
      if (n++ % 2 === 0) load(); else tick();
    }, 1000);
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    add.disabled = true;
    try {
      const body = { url: url.value.trim(), key: key.value };
      if (ca.value.trim()) body.tls_ca = ca.value;
      const data = await call('POST', 'api/push', body);
      show(data);
      url.value = '';
      key.value = ''; // never kept in the page
      ca.value = '';
      caBox.open = false;
      say('Added.', 'ok');
    } catch (x) {
      say(`Not added: ${x.message}`, 'error');
    }
    add.disabled = false;
  });

  window.addEventListener('pinhole-auth', (e) => {
    if (e.detail?.logged_in) load(); else { panel.hidden = true; poll(false); }
  });
  panel.addEventListener('toggle', () => { poll(panel.open); if (panel.open) load(); });
  load();
  return panel;
}

mountPush(document.querySelector('main'));
