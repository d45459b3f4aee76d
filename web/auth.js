// Admin access (docs/security.md): first-boot password setup, login, and a
// small admin menu (change password, log out). Never covers or moves the
// live view: first boot shows a highlighted "Set admin password" button in
// the header; setup and login are dialogs opened on request.
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

let state = { setup_needed: false, logged_in: false, lan: true };

async function api(path, body) {
  const opts = body === undefined
    ? { cache: 'no-store' }
    : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
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
  const title = { login: 'Admin login', setup: 'Set the admin password', change: 'Change admin password' }[mode];
  form.append($('h2', { id: 'auth-title', text: title }));
  if (mode === 'setup') {
    form.append($('p', { class: 'auth-hint', text: 'This camera has no password yet. Live view works without one; updates and settings need it. At least 8 characters.' }),
      passwordField('Password', 'setup-password', 'new-password'),
      passwordField('Repeat', 'setup-repeat', 'new-password'));
  } else if (mode === 'login') {
    form.append(passwordField('Password', 'login-password', 'current-password'));
  } else {
    form.append(passwordField('Current password', 'current-password', 'current-password'),
      passwordField('New password', 'new-password', 'new-password'),
      passwordField('Repeat new password', 'repeat-password', 'new-password'));
  }
  const err = $('p', { class: 'auth-error', role: 'alert' });
  form.append(err, $('div', { class: 'auth-actions' },
    $('button', { type: 'button', text: 'Cancel', on: { click: () => dialog.close() } }),
    $('button', { type: 'submit', class: 'primary', text: { login: 'Log in', setup: 'Set password', change: 'Change' }[mode] })));
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

function render() {
  const setup = state.setup_needed;
  menuButton.hidden = setup && !state.lan; // setup only from the LAN
  menuButton.classList.toggle('attention', setup);
  menuButton.textContent = setup ? 'Set admin password' : state.logged_in ? 'Admin ▾' : 'Log in';
  menuButton.title = setup ? 'This camera has no admin password yet: set one'
    : state.logged_in ? 'Admin menu' : 'Log in as admin';
  document.documentElement.dataset.admin = state.logged_in ? 'yes' : 'no';
  window.dispatchEvent(new CustomEvent('pinhole-auth', { detail: { ...state } }));
}

async function refresh() {
  // ?token=… (embedding) becomes a viewer cookie for the page's own requests.
  const token = new URLSearchParams(location.search).get('token');
  try {
    state = await api(token ? `api/auth?token=${encodeURIComponent(token)}` : 'api/auth');
  } catch { /* offline: keep the last state */ }
  render();
}

function mount() {
  const bar = document.querySelector('header.bar');
  if (bar) bar.append(wrap); else document.body.prepend(wrap);
  document.body.append(dialog);
  refresh();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', mount);
else mount();

export { refresh as refreshAuth };
