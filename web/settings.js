// Camera settings panel: a form built from GET /api/camera (values, ranges,
// choices, what this source cannot do), applied with PUT /api/camera. Only
// changed values are sent; a refused value (400) is shown next to its field
// and nothing is applied. Changing needs an admin session (auth.js sends a
// "pinhole-auth" event with { logged_in }). Also the HTTPS switch, the
// allowed origins and host names of the access policy, and the RTSP URL
// to copy into an NVR or Home Assistant.

import { el } from './dom.js';

const fmtValue = (s) => (s.unit === 'bit/s' && s.value >= 1000 ? `${(s.value / 1e6).toFixed(2)} Mbit/s` : '');

export function mountSettings(parent) {
  const msg = el('p', { class: 'fw-msg', id: 'set-msg', role: 'status', 'aria-live': 'polite' });
  const hint = el('p', { class: 'set-hint', id: 'set-login-hint', hidden: '' },
    'Log in as admin to change the camera settings.');
  const form = el('form', { id: 'set-form', novalidate: '' });
  const panel = el('details', { class: 'panel', id: 'settings' },
    el('summary', {}, 'Camera settings'), hint, form, msg);
  parent.append(panel);

  let current = null; // last GET/PUT answer
  let admin = document.documentElement.dataset.admin === 'yes';
  let busy = false;
  const say = (text, kind = '') => { msg.textContent = text; msg.dataset.kind = kind; };

  // One row: label, input, unit/range, note, error slot. `name` is the PUT key path.
  function row(s, name) {
    const id = `set-${name.replace('.', '-')}`;
    let input;
    if (s.type === 'boolean') {
      input = el('input', { type: 'checkbox', id, name });
      input.checked = !!s.value;
    } else if (s.type === 'menu') {
      input = el('select', { id, name });
      for (const c of s.choices) {
        const o = el('option', { value: String(c.value), text: c.label });
        if (c.value === s.value) o.selected = true;
        input.append(o);
      }
    } else {
      const float = s.type === 'float';
      input = el('input', { type: 'number', id, name, min: String(s.min), max: String(s.max), step: String(s.step || 1), inputmode: float ? 'decimal' : 'numeric' });
      input.value = String(s.value);
      if (float) {
        // A slider next to the number (libcamera's floats: Brightness -1..1);
        // the number is what is sent, the slider follows it both ways.
        const slider = el('input', { type: 'range', id: `${id}-slider`, min: String(s.min), max: String(s.max), step: String(s.step), 'aria-label': s.label });
        slider.value = String(s.value);
        if (!s.supported) slider.disabled = true;
        slider.addEventListener('input', () => { input.value = slider.value; });
        input.addEventListener('input', () => { slider.value = input.value; });
        input.slider = slider;
      }
    }
    if (!s.supported) input.disabled = true;
    input.dataset.setting = name;
    const range = s.type === 'integer' ? `${s.min}–${s.max}${s.unit ? ` ${s.unit}` : ''}`
      : s.type === 'float' ? `${s.min} to ${s.max}` : '';
    const extra = [range, fmtValue(s), s.live ? 'live' : ''].filter(Boolean).join(' · ');
    const err = el('span', { class: 'set-err', id: `${id}-err`, role: 'alert' });
    const note = s.note ? el('span', { class: 'set-note', text: s.supported ? s.note : `Not available: ${s.note}` }) : '';
    return el('div', { class: `set-row${s.supported ? '' : ' unsupported'}`, 'data-key': name },
      el('label', { for: id, text: s.label }),
      el('div', { class: 'set-input' }, input.slider ?? '', input, extra ? el('span', { class: 'set-range', text: extra }) : ''),
      el('div', { class: 'set-info' }, note, err));
  }

  function render(cam) {
    current = cam;
    form.replaceChildren();
    const video = el('fieldset', { class: 'set-group', id: 'set-video' }, el('legend', { text: 'Video' }));
    for (const key of cam.order) video.append(row(cam.fields[key], key));
    form.append(video);
    if (cam.controls.length) {
      const ctl = el('fieldset', { class: 'set-group', id: 'set-controls' }, el('legend', { text: 'Camera controls' }));
      for (const c of cam.controls) ctl.append(row(c, `controls.${c.key}`));
      form.append(ctl);
    }
    if (cam.notes?.length) form.append(el('ul', { class: 'set-notes' }, ...cam.notes.map((n) => el('li', { text: n }))));
    const apply = el('button', { type: 'submit', class: 'primary', id: 'set-apply' }, 'Apply');
    const reset = el('button', { type: 'button', id: 'set-reset' }, 'Reset');
    reset.addEventListener('click', () => { render(current); say(''); });
    form.append(el('div', { class: 'fw-row set-actions' }, apply, reset,
      el('span', { class: 'set-note', text: cam.persistent ? 'Changes are saved to the config file.' : 'No config file: changes last until the daemon restarts.' })));
    setEnabled();
  }

  function setEnabled() {
    hint.hidden = admin;
    for (const f of form.querySelectorAll('fieldset')) f.disabled = !admin || busy;
    const apply = form.querySelector('#set-apply');
    if (apply) apply.disabled = !admin || busy;
  }

  // The settings that differ from the last answer, as a PUT body.
  function changes() {
    const body = {};
    for (const input of form.querySelectorAll('[data-setting]')) {
      if (input.disabled) continue;
      const name = input.dataset.setting;
      const s = name.startsWith('controls.')
        ? current.controls.find((c) => `controls.${c.key}` === name)
        : current.fields[name];
      let v;
      const text = input.value.trim();
      const number = s.type === 'float' ? /^-?(\d+\.?\d*|\.\d+)(e-?\d+)?$/i : /^-?\d+$/;
      if (s.type === 'boolean') v = input.checked;
      else if (s.type === 'menu') v = Number(input.value);
      else if (!number.test(text)) v = input.value; // the daemon names it
      else v = Number(text);
      if (v === s.value) continue;
      if (name.startsWith('controls.')) (body.controls ??= {})[name.slice(9)] = v;
      else body[name] = v;
    }
    return body;
  }

  function clearErrors() {
    for (const e of form.querySelectorAll('.set-err')) e.textContent = '';
    for (const r of form.querySelectorAll('.set-row.invalid')) r.classList.remove('invalid');
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (busy || !current) return;
    clearErrors();
    const body = changes();
    if (!Object.keys(body).length) { say('Nothing changed.', 'muted'); return; }
    busy = true;
    setEnabled();
    say('Applying…');
    try {
      const r = await fetch('api/camera', {
        method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
      });
      let data = {};
      try { data = await r.json(); } catch { /* not JSON */ }
      busy = false;
      if (r.ok) {
        render(data);
        const saved = data.persisted ? 'saved' : 'not saved (no config file)';
        say(`Applied${data.restarted ? '; the stream restarted with the new settings' : ''}; ${saved}.${data.warning ? ` ${data.warning}` : ''}`,
          data.warning ? 'error' : 'ok');
      } else if (r.status === 400 && data.field) {
        setEnabled();
        const rowEl = form.querySelector(`.set-row[data-key="${CSS.escape(data.field)}"]`);
        if (rowEl) {
          rowEl.classList.add('invalid');
          rowEl.querySelector('.set-err').textContent = `${data.reason}; allowed: ${data.allowed}`;
          rowEl.querySelector('[data-setting]')?.focus();
        }
        say(`Not applied: ${data.error}. Nothing was changed.`, 'error');
      } else {
        setEnabled();
        say(`Not applied: ${data.error ?? `HTTP ${r.status}`}`, 'error');
      }
    } catch (x) {
      busy = false;
      setEnabled();
      say(`Not applied: ${x.message}`, 'error');
    }
  });

  async function load() {
    try {
      const r = await fetch('api/camera', { cache: 'no-store' });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) { form.replaceChildren(); say(data.error ?? `HTTP ${r.status}`, 'muted'); return; }
      render(data);
    } catch (x) { say(`Cannot load the settings: ${x.message}`, 'error'); }
  }

  // HTTPS (GET/PUT /api/https): nginx on 443 with a self-signed certificate
  // made on the camera; hidden where the daemon has no such setting.
  const tlsBox = el('input', { type: 'checkbox', id: 'set-https' });
  const tlsMsg = el('span', { class: 'set-note', id: 'set-https-msg', role: 'status' });
  const tls = el('fieldset', { class: 'set-group', id: 'set-https-group', hidden: '' },
    el('legend', { text: 'Security' }),
    el('div', { class: 'set-row' }, el('label', { for: 'set-https', text: 'HTTPS' }),
      el('div', { class: 'set-input' }, tlsBox), el('div', { class: 'set-info' }, tlsMsg)));
  panel.append(tls);
  const tlsEnable = () => { tlsBox.disabled = !admin; };
  async function loadTls() {
    try {
      const r = await fetch('api/https', { cache: 'no-store' });
      if (!r.ok) return;
      tlsBox.checked = !!(await r.json()).enabled;
      tls.hidden = false;
      tlsEnable();
    } catch { /* no HTTPS setting here */ }
  }
  tlsBox.addEventListener('change', async () => {
    const on = tlsBox.checked;
    tlsBox.disabled = true;
    try {
      const r = await fetch('api/https', {
        method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ enabled: on }),
      });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(data.error ?? `HTTP ${r.status}`);
      const url = `https://${location.hostname}${location.pathname}`;
      tlsMsg.replaceChildren(on
        ? el('span', {}, 'On in a few seconds: ', el('a', { href: url, text: url }),
          ' (self-signed certificate: the browser asks once); plain HTTP then redirects.')
        : 'Off in a few seconds: plain HTTP only.');
    } catch (x) {
      tlsBox.checked = !on;
      tlsMsg.textContent = `Not changed: ${x.message}`;
    }
    tlsEnable();
  });

  // Allowed origins and host names (GET/PUT /api/access): pages on these
  // origins (Mainsail/Fluidd on the printer) may open the live streams;
  // these names reach the camera besides its IP, hostname and .local name.
  // One per line; the config file's own entries are shown, not edited here.
  const lines = (t) => t.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
  const originsBox = el('textarea', { id: 'set-origins', rows: '3', spellcheck: 'false', placeholder: 'http://printer.local' });
  const hostsBox = el('textarea', { id: 'set-hosts', rows: '2', spellcheck: 'false', placeholder: 'camera.example.org' });
  const accessSave = el('button', { type: 'button', id: 'set-access-save' }, 'Save');
  const accessMsg = el('span', { class: 'set-note', id: 'set-access-msg', role: 'status' });
  const fromConfig = el('span', { class: 'set-note', id: 'set-access-config' });
  const access = el('fieldset', { class: 'set-group', id: 'set-access-group', hidden: '' },
    el('legend', { text: 'Other pages and names' }),
    el('div', { class: 'set-row' }, el('label', { for: 'set-origins', text: 'Allowed origins' }),
      el('div', { class: 'set-input' }, originsBox),
      el('div', { class: 'set-info' }, el('span', { class: 'set-note', text: 'Pages that may show the live view, e.g. http://printer.local (Mainsail, Fluidd). One per line.' }))),
    el('div', { class: 'set-row' }, el('label', { for: 'set-hosts', text: 'Allowed host names' }),
      el('div', { class: 'set-input' }, hostsBox),
      el('div', { class: 'set-info' }, el('span', { class: 'set-note', text: 'Names besides its IP address, hostname and .local name that reach this camera.' }))),
    el('div', { class: 'fw-row set-actions' }, accessSave, accessMsg, fromConfig));
  panel.append(access);
  const accessEnable = () => { for (const x of [originsBox, hostsBox, accessSave]) x.disabled = !admin; };
  function showAccess(data) {
    originsBox.value = (data.allowed_origins ?? []).join('\n');
    hostsBox.value = (data.allowed_hosts ?? []).join('\n');
    const cfg = [...(data.config?.allowed_origins ?? []), ...(data.config?.allowed_hosts ?? [])];
    fromConfig.textContent = cfg.length ? `Also allowed by the config file: ${cfg.join(', ')}` : '';
  }
  async function loadAccess() {
    try {
      const r = await fetch('api/access', { cache: 'no-store' });
      if (!r.ok) return;
      showAccess(await r.json());
      access.hidden = false;
      accessEnable();
    } catch { /* not offered here */ }
  }
  accessSave.addEventListener('click', async () => {
    accessSave.disabled = true;
    try {
      const r = await fetch('api/access', {
        method: 'PUT', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ allowed_origins: lines(originsBox.value), allowed_hosts: lines(hostsBox.value) }),
      });
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(data.error ?? `HTTP ${r.status}`);
      showAccess(data);
      accessMsg.textContent = data.persistent ? 'Saved.' : 'Applied (not saved: no data directory).';
    } catch (x) {
      accessMsg.textContent = `Not saved: ${x.message}`;
    }
    accessEnable();
  });

  // RTSP (from /api/status): the URL as this page reaches the camera,
  // read-only, with a copy button. Hidden when the daemon has no RTSP.
  const rtspUrl = el('input', { type: 'text', id: 'set-rtsp-url', readonly: '', spellcheck: 'false' });
  const rtspCopy = el('button', { type: 'button', id: 'set-rtsp-copy' }, 'Copy');
  const rtspNote = el('span', { class: 'set-note', id: 'set-rtsp-note', role: 'status' });
  const rtsp = el('fieldset', { class: 'set-group', id: 'set-rtsp-group', hidden: '' },
    el('legend', { text: 'RTSP (NVRs, Home Assistant, VLC)' }),
    el('div', { class: 'set-row' }, el('label', { for: 'set-rtsp-url', text: 'Stream URL' }),
      el('div', { class: 'set-input' }, rtspUrl, rtspCopy),
      el('div', { class: 'set-info' }, rtspNote)));
  panel.append(rtsp);
  async function loadRtsp() {
    try {
      const r = await fetch('api/status', { cache: 'no-store' });
      if (!r.ok) return;
      const st = (await r.json()).rtsp;
      if (!st) return;
      rtspUrl.value = `rtsp://${location.hostname}:${st.port}${st.path}`;
      const sessions = `${st.sessions} playing now. `;
      const auth = (await fetch('api/auth', { cache: 'no-store' }).then((x) => x.json()).catch(() => ({}))).viewer_password
        ? 'With the viewer password: user "viewer" (rtsp://viewer:PASSWORD@…). '
        : '';
      rtspNote.textContent = `${sessions}${auth}TCP is the most reliable transport.`;
      rtsp.hidden = false;
    } catch { /* no RTSP here */ }
  }
  rtspCopy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(rtspUrl.value);
    } catch {
      // Plain http is not a secure context: no Clipboard API there.
      rtspUrl.select();
      document.execCommand('copy');
    }
    rtspCopy.textContent = 'Copied';
    setTimeout(() => { rtspCopy.textContent = 'Copy'; }, 1500);
  });

  window.addEventListener('pinhole-auth', (e) => { admin = !!e.detail?.logged_in; setEnabled(); tlsEnable(); accessEnable(); });
  panel.addEventListener('toggle', () => { if (panel.open && !busy) { load(); loadTls(); loadAccess(); loadRtsp(); } });
  load();
  loadTls();
  loadAccess();
  loadRtsp();
  return panel;
}

mountSettings(document.querySelector('main'));
