// Admin access (docs/security.md): first-boot password setup, login, and a
// small admin menu (change password, viewer password, log out). Never covers
// or moves the live view: first boot shows a highlighted "Set admin password"
// button in the header; setup and login are dialogs opened on request. The
// one exception is a camera with a viewer password: there is no live view
// until the viewer logs in, so the prompt sits on the (black) stage.
// Other panels can listen for the "pinhole-auth" event (detail = state).

const $ = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'on') for (const [ev, f] of Object.entries(v)) el.addEventListener(ev, f);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v);
  }
  el.append(...kids);
  return el;
};

let state = { setup_needed: false, logged_in: false, lan: true, may_view: true, viewer_password: false };

async function api(path, body, method = 'POST') {
  const opts = body === undefined
    ? { cache: 'no-store' }
    : { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
  const r = await fetch(path, opts);
  let data = {};
  try { data = await r.json(); } catch { /* empty body */ }
  if (!r.ok) {
    const wait = r.headers.get('retry-after');
    throw new Error(wait ? `Too many attempts: try again in ${wait} s` : (data.error || `HTTP ${r.status}`));
  }
  return data;
}

function passwordField(label, id, autocomplete) {
  return $('label', { class: 'auth-field' }, $('span', { text: label }),
    $('input', { type: 'password', id, name: id, autocomplete, required: '', minlength: '8', maxlength: '1024' }));
}

// ---- login / change-password dialog ----
const dialog = $('dialog', { class: 'auth-dialog', id: 'auth-dialog', 'aria-labelledby': 'auth-title' });
const form = $('form', { method: 'dialog' });
dialog.append(form);

function showDialog(mode) {
  form.replaceChildren();
  const title = { login: 'Admin login', setup: 'Set the admin password', change: 'Change admin password', viewer: 'Viewer password' }[mode];
  form.append($('h2', { id: 'auth-title', text: title }));
  if (mode === 'setup') {
    form.append($('p', { class: 'auth-hint', text: 'This camera has no password yet. Live view works without one; updates and settings need it. At least 8 characters.' }),
      passwordField('Password', 'setup-password', 'new-password'),
      passwordField('Repeat', 'setup-repeat', 'new-password'));
  } else if (mode === 'login') {
    form.append(passwordField('Password', 'login-password', 'current-password'));
  } else if (mode === 'viewer') {
    form.append($('p', { class: 'auth-hint', id: 'viewer-pw-state', text: state.viewer_password
      ? 'Set: everyone logs in to watch (the admin password works too; viewer tokens still work for embedding).'
      : `Not set: viewing follows viewer_access (${state.viewer_access || 'lan'}). With a viewer password, everyone logs in to watch, also on the LAN.` }),
    passwordField(state.viewer_password ? 'New viewer password' : 'Viewer password', 'viewer-new', 'new-password'),
    passwordField('Repeat', 'viewer-repeat', 'new-password'));
  } else {
    form.append(passwordField('Current password', 'current-password', 'current-password'),
      passwordField('New password', 'new-password', 'new-password'),
      passwordField('Repeat new password', 'repeat-password', 'new-password'));
  }
  const err = $('p', { class: 'auth-error', role: 'alert' });
  const actions = $('div', { class: 'auth-actions' },
    $('button', { type: 'button', text: 'Cancel', on: { click: () => dialog.close() } }),
    $('button', { type: 'submit', class: 'primary', id: 'auth-submit', text: { login: 'Log in', setup: 'Set password', change: 'Change', viewer: state.viewer_password ? 'Change' : 'Set' }[mode] }));
  if (mode === 'viewer' && state.viewer_password) {
    // Removing needs no password fields: the admin session is enough.
    actions.prepend($('button', { type: 'button', id: 'viewer-remove', text: 'Remove',
      on: { click: async () => {
        try { await api('api/auth/viewer/password', {}, 'DELETE'); dialog.close(); await refresh(); }
        catch (x) { err.textContent = x.message; }
      } } }));
  }
  form.append(err, actions);
  form.onsubmit = async (e) => {
    e.preventDefault();
    err.textContent = '';
    try {
      if (mode === 'setup') {
        const p = form.querySelector('#setup-password').value;
        if (p !== form.querySelector('#setup-repeat').value) throw new Error('The passwords differ');
        await api('api/auth/setup', { password: p });
      } else if (mode === 'login') {
        await api('api/auth/login', { password: form.querySelector('#login-password').value });
      } else if (mode === 'viewer') {
        const p = form.querySelector('#viewer-new').value;
        if (p !== form.querySelector('#viewer-repeat').value) throw new Error('The passwords differ');
        await api('api/auth/viewer/password', { password: p });
      } else {
        const n = form.querySelector('#new-password').value;
        if (n !== form.querySelector('#repeat-password').value) throw new Error('The new passwords differ');
        await api('api/auth/password', { current: form.querySelector('#current-password').value, password: n });
      }
      dialog.close();
      await refresh();
    } catch (x) { err.textContent = x.message; }
  };
  dialog.showModal();
  form.querySelector('input')?.focus();
}

// ---- header button + menu ----
const menuButton = $('button', { type: 'button', id: 'auth-button', class: 'auth-button', 'aria-haspopup': 'menu', 'aria-expanded': 'false' });
const menu = $('div', { class: 'auth-menu', id: 'auth-menu', role: 'menu', hidden: '' },
  $('button', { type: 'button', role: 'menuitem', id: 'auth-change', text: 'Change password', on: { click: () => { closeMenu(); showDialog('change'); } } }),
  $('button', { type: 'button', role: 'menuitem', id: 'auth-viewer', text: 'Viewer password…', on: { click: () => { closeMenu(); showDialog('viewer'); } } }),
  $('button', { type: 'button', role: 'menuitem', id: 'auth-logout', text: 'Log out', on: { click: async () => { closeMenu(); await api('api/auth/logout', {}); await refresh(); } } }));
const wrap = $('div', { class: 'auth' }, menuButton, menu);

function closeMenu() { menu.hidden = true; menuButton.setAttribute('aria-expanded', 'false'); }
menuButton.addEventListener('click', () => {
  if (state.setup_needed) { showDialog('setup'); return; }
  if (!state.logged_in) { showDialog('login'); return; }
  menu.hidden = !menu.hidden;
  menuButton.setAttribute('aria-expanded', String(!menu.hidden));
});
document.addEventListener('click', (e) => { if (!wrap.contains(e.target)) closeMenu(); });
document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeMenu(); });

// ---- viewer login, on the stage: only when this client may not watch ----
const viewerField = $('input', { type: 'password', id: 'viewer-password', name: 'viewer-password', autocomplete: 'current-password', required: '', maxlength: '1024', 'aria-label': 'Viewer password', placeholder: 'Password' });
const viewerErr = $('p', { class: 'auth-error', id: 'viewer-error', role: 'alert' });
const viewerHint = $('p', { class: 'auth-hint', id: 'viewer-hint' });
const viewerForm = $('form', { class: 'viewer-login', id: 'viewer-login', hidden: '' },
  $('h2', { text: 'Password needed to watch' }), viewerHint,
  $('div', { class: 'viewer-row', id: 'viewer-row' }, viewerField, $('button', { type: 'submit', class: 'primary', id: 'viewer-submit', text: 'Watch' })),
  viewerErr);
viewerForm.addEventListener('submit', async (e) => {
  e.preventDefault();
  viewerErr.textContent = '';
  try {
    await api('api/auth/viewer/login', { password: viewerField.value });
    viewerField.value = '';
    await refresh();
  } catch (x) { viewerErr.textContent = x.message === 'wrong password' ? 'Wrong password' : x.message; }
});

let wasLocked = false;

function renderViewer() {
  const locked = state.may_view === false && !state.setup_needed;
  // Unlocked by a viewer or admin login: connect now, not after the retry wait.
  if (wasLocked && !locked) window.pinhole?.restart?.();
  wasLocked = locked;
  viewerForm.hidden = !locked;
  document.getElementById('stage')?.toggleAttribute('data-locked', locked);
  // Without a viewer password only a token link or the admin login helps.
  document.getElementById('viewer-row').hidden = !state.viewer_password;
  viewerHint.textContent = state.viewer_password
    ? 'This camera asks for a viewer password.'
    : 'Watching this camera needs a link with a viewer token, or the admin login.';
}

function render() {
  renderViewer();
  const setup = state.setup_needed;
  menuButton.hidden = setup && !state.lan; // setup only from the LAN
  menuButton.classList.toggle('attention', setup);
  menuButton.textContent = setup ? 'Set admin password' : state.logged_in ? 'Admin ▾' : 'Log in';
  menuButton.title = setup ? 'This camera has no admin password yet: set one'
    : state.logged_in ? 'Admin menu' : 'Log in as admin';
  document.documentElement.dataset.admin = state.logged_in ? 'yes' : 'no';
  window.dispatchEvent(new CustomEvent('pinhole-auth', { detail: { ...state } }));
}

// ?token=… (embedding) becomes a viewer cookie for the page's own requests;
// sent once, so the periodic refresh does not mint a session each time.
let token = new URLSearchParams(location.search).get('token');

async function refresh() {
  try {
    state = await api(token ? `api/auth?token=${encodeURIComponent(token)}` : 'api/auth');
    token = null;
  } catch { /* offline: keep the last state */ }
  render();
}

function mount() {
  const bar = document.querySelector('header.bar');
  if (bar) bar.append(wrap); else document.body.prepend(wrap);
  document.body.append(dialog);
  const stage = document.getElementById('stage');
  if (stage) stage.append(viewerForm); else document.body.append(viewerForm);
  refresh();
  // A viewer session can end (idle, password changed): ask again.
  setInterval(() => { if (!document.hidden) refresh(); }, 30000);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', mount);
else mount();

export { refresh as refreshAuth };
