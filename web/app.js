// pinhole UI: picks a player, shows its state and statistics, polls /api/status.

import { PLAYERS, playerById, autoPlayer } from './player/index.js';

const $ = (id) => document.getElementById(id);
const LS_PLAYER = 'pinhole.player';
const LS_STATS = 'pinhole.stats';
const STATUS_EVERY_MS = 2000;

const params = new URLSearchParams(location.search);
let choice = params.get('player') || localStorage.getItem(LS_PLAYER) || 'auto';
if (choice !== 'auto' && !playerById(choice)) choice = 'auto';

let player = null;
let playerState = { kind: 'idle', text: '' };
let status = null;        // last /api/status answer
let statusOk = false;     // did the last poll succeed?
let statusFails = 0;
let statusLocked = false; // 401: reachable, but viewing needs a login (auth.js asks)

// ---- player selection --------------------------------------------------------------------

function buildSelect() {
  const sel = $('player-select');
  const auto = autoPlayer();
  sel.replaceChildren(new Option(`Auto (${auto.label})`, 'auto'));
  for (const P of PLAYERS) {
    const o = new Option(P.supported() ? P.label : `${P.label} (unsupported)`, P.id);
    sel.append(o);
  }
  sel.value = choice;
  sel.addEventListener('change', () => {
    choice = sel.value;
    localStorage.setItem(LS_PLAYER, choice);
    if (params.has('player')) {
      params.set('player', choice);
      history.replaceState(null, '', `?${params}`);
    }
    startPlayer();
  });
}

function startPlayer(P = choice === 'auto' ? autoPlayer() : playerById(choice)) {
  if (player) player.stop();
  player = null;
  $('screen').replaceChildren();
  if (!P.supported()) {
    playerState = { kind: 'error', text: `${P.label} is not supported by this browser` };
    render();
    return;
  }
  const p = new P({
    onState: (s) => {
      if (p !== player) return;
      // Auto: a player that cannot play here (e.g. no decoder for the codec) hands over to the next.
      if (s.kind === 'error' && choice === 'auto' && autoPlayer(P) !== P) {
        setTimeout(() => { if (p === player) startPlayer(autoPlayer(P)); });
      }
      playerState = s;
      render();
    },
  });
  player = p;
  window.pinhole.player = player;
  player.start($('screen'));
  render();
}

// ---- state overlay -----------------------------------------------------------------------

function cameraProblem() {
  const src = status?.source;
  if (!statusOk || !src) return null;
  if (src.error) return `no camera: ${src.error}`;
  if (src.state && !['running', 'starting'].includes(src.state)) return `no camera: ${src.state}`;
  return null;
}

function render() {
  const problem = cameraProblem();
  const el = $('state');
  let text = '';
  let kind = playerState.kind;
  if (problem && kind !== 'playing') { text = problem; kind = 'error'; }
  else if (kind === 'connecting' || kind === 'reconnecting' || kind === 'error') text = playerState.text;
  if (kind === 'reconnecting' && !statusOk && statusFails > 0 && !statusLocked) text += ' · pinhole is unreachable';
  el.dataset.kind = kind;
  el.hidden = !text;
  $('state-text').textContent = text;
  $('tap').hidden = playerState.kind !== 'blocked';
  const live = $('live');
  live.dataset.on = String(playerState.kind === 'playing');
  live.title = playerState.kind === 'playing' ? 'live' : playerState.kind;
}

// ---- status poll -------------------------------------------------------------------------

async function pollStatus() {
  try {
    const r = await fetch('api/status', { cache: 'no-store' });
    statusLocked = r.status === 401;
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const s = await r.json();
    const restarted = status && typeof s.uptime_s === 'number' && s.uptime_s < (status.uptime_s ?? 0);
    const cameBack = !statusOk && statusFails > 0;
    status = s;
    statusOk = true;
    statusFails = 0;
    if ((restarted || cameBack) && player?.restart) player.restart();
  } catch {
    statusOk = false;
    statusFails++;
  }
  renderStatus();
  render();
}

function renderStatus() {
  const s = status;
  // The source's own description when it has one (it usually names the size), else the stream's.
  let line = s?.source?.detail || '';
  if (!line && s?.stream?.width) {
    line = `${s.source?.kind ?? 'source'} · ${s.stream.width}×${s.stream.height}${s.stream.fps ? ` @ ${fmtNum(s.stream.fps, 0)} fps` : ''}`;
  }
  $('source-line').textContent = statusOk ? line : statusLocked ? 'login needed' : (statusFails ? 'pinhole is unreachable' : '');
  $('source-line').title = $('source-line').textContent;
  if (s?.version) $('foot-version').textContent = `pinhole ${s.version}`;
  $('foot-uptime').textContent = statusOk && typeof s?.uptime_s === 'number' ? `up ${fmtDuration(s.uptime_s)}` : '';
}

// ---- statistics ----------------------------------------------------------------------------

function viewerCount(s) {
  const v = s?.viewers;
  if (!v || typeof v !== 'object') return null;
  return Object.values(v).reduce((a, n) => a + (Number(n) || 0), 0);
}

function collectStats() {
  const p = player ? player.stats() : { state: playerState.kind };
  return {
    ...p,
    viewers: viewerCount(status),
    viewersBy: status?.viewers ?? null,
    serverFps: status?.measured?.fps ?? null,
    serverBitrate: status?.measured?.bitrate ?? null,
    drops: status?.drops ?? null,
  };
}

function renderStats() {
  if ($('stats').hidden) return;
  const s = collectStats();
  const rows = [
    ['player', `${s.player ?? '—'}${s.playbackRate && s.playbackRate !== 1 ? ` · ${fmtNum(s.playbackRate, 2)}×` : ''}`],
    ['resolution', s.width ? `${s.width}×${s.height}` : '—'],
    ['fps', s.fps != null ? fmtNum(s.fps, 1) : (s.serverFps != null ? `${fmtNum(s.serverFps, 1)} (server)` : '—')],
    ['bitrate', s.bitrate != null ? fmtBitrate(s.bitrate) : (s.serverBitrate != null ? `${fmtBitrate(s.serverBitrate)} (server)` : '—')],
    ['delay', s.delay != null ? `${fmtMs(s.delay)}${s.delaySource === 'buffer' ? ' (buffer)' : s.delaySource === 'webrtc' ? ' (estimate)' : ''}` : '—'],
  ];
  if (s.buffer != null) rows.push(['buffer', fmtMs(s.buffer)]);
  if (s.droppedFrames) rows.push(['dropped', String(s.droppedFrames)]);
  // WebRTC: the network as the browser sees it.
  if (s.rtt != null) rows.push(['RTT', fmtMs(s.rtt)]);
  if (s.packetsLost != null) rows.push(['packets lost', `${s.packetsLost}${s.nacks ? ` (${s.nacks} NACKs)` : ''}`]);
  rows.push(['viewers', s.viewers != null ? String(s.viewers) : '—']);
  $('stats-body').replaceChildren(...rows.map(([k, v]) => {
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    const td = document.createElement('td');
    th.textContent = k;
    td.textContent = v;
    tr.append(th, td);
    return tr;
  }));
  if (s.width && s.height) $('stage').style.setProperty('--ar', `${s.width} / ${s.height}`);
}

function setStatsVisible(on) {
  $('stats').hidden = !on;
  $('btn-stats').setAttribute('aria-pressed', String(on));
  localStorage.setItem(LS_STATS, on ? '1' : '0');
  renderStats();
}

// ---- buttons -----------------------------------------------------------------------------

function toggleFullscreen() {
  const stage = $('stage');
  if (document.fullscreenElement || document.webkitFullscreenElement) {
    (document.exitFullscreen || document.webkitExitFullscreen).call(document);
  } else if (stage.requestFullscreen) {
    stage.requestFullscreen().catch(() => {});
  } else if (stage.webkitRequestFullscreen) {
    stage.webkitRequestFullscreen();
  } else {
    // iPhone Safari: only the <video> element itself can go fullscreen.
    $('screen').querySelector('video')?.webkitEnterFullscreen?.();
  }
}

// ---- formatting ----------------------------------------------------------------------------

function fmtNum(n, digits) { return Number(n).toFixed(digits); }
function fmtMs(s) { return s >= 10 ? `${fmtNum(s, 1)} s` : `${Math.round(s * 1000)} ms`; }
function fmtBitrate(bps) {
  if (bps >= 1e6) return `${fmtNum(bps / 1e6, 2)} Mbit/s`;
  return `${fmtNum(bps / 1e3, 0)} kbit/s`;
}
function fmtDuration(s) {
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

// ---- boot ----------------------------------------------------------------------------------

window.pinhole = {
  player: null,
  stats: collectStats,
  get status() { return status; },
  restart: startPlayer,
};

buildSelect();
$('btn-stats').addEventListener('click', () => setStatsVisible($('stats').hidden));

// ---- sound ---------------------------------------------------------------------------------
// Shown when the player carries sound (WebCodecs with an audio track); muted until pressed.

function renderSound() {
  const a = player?.audioState?.() ?? null;
  const b = $('btn-sound');
  b.hidden = !a;
  if (!a) return;
  b.setAttribute('aria-pressed', String(!a.muted));
  $('sound-text').textContent = a.muted ? 'Unmute' : 'Mute';
  const pct = Number.isFinite(a.level) ? Math.max(0, Math.min(100, (a.level + 60) / 60 * 100)) : 0;
  $('sound-level').style.width = `${pct}%`;
  $('sound-level').parentElement.hidden = a.level === null; // this player has no meter
}

function toggleSound() {
  const a = player?.audioState?.();
  if (a) player.setMuted(!a.muted);
  renderSound();
}

$('btn-sound').addEventListener('click', toggleSound);
setInterval(renderSound, 100);
$('btn-fullscreen').addEventListener('click', toggleFullscreen);
$('tap').addEventListener('click', () => { $('screen').querySelector('video')?.play(); });
document.addEventListener('keydown', (e) => {
  if (e.target.closest?.('select, input, textarea') || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === 's') setStatsVisible($('stats').hidden);
  else if (e.key === 'm') toggleSound();
  else if (e.key === 'f') toggleFullscreen();
});
const statsParam = params.get('stats');
setStatsVisible(statsParam != null ? statsParam !== '0' : localStorage.getItem(LS_STATS) === '1');
startPlayer();
pollStatus();
setInterval(pollStatus, STATUS_EVERY_MS);
setInterval(renderStats, 500);
