// The player registry. A player is a class with:
//   static id, static label, static supported() -> bool, optional static skipInAuto() -> bool
//   constructor({onState})   onState({kind: 'connecting'|'reconnecting'|'playing'|'blocked'|'error'|'idle', text})
//   start(container)  stop()  stats() -> {width, height, fps, bitrate, delay, delaySource, …}
//   optional restart(): called when the status poll sees that the daemon restarted.
// Order matters: "Auto" picks the first supported one: WebRTC → WebCodecs (secure contexts
// only) → MSE → HLS → DASH → MJPEG; if the chosen one reports an error, the UI moves on to
// the next. WebRTC comes first: the lowest delay measured (bench/README.md), sound in sync by
// the browser, and it plays where WebCodecs cannot (a plain-http page on the LAN is no secure
// context; iOS Safari). It needs UDP (or ICE-TCP) to the camera: when that is blocked it says
// so within 3 s, Auto moves on, and skips WebRTC in this browser for an hour (webrtc.js).
// (DASH plays wherever HLS does here, so Auto reaches it only when HLS fails.)

import { WebCodecsPlayer } from './webcodecs.js';
import { MsePlayer } from './mse.js';
import { MjpegPlayer } from './mjpeg.js';
import { HlsPlayer } from './hls.js';
import { DashPlayer } from './dash.js';
import { WebRtcPlayer } from './webrtc.js';

export const PLAYERS = [WebRtcPlayer, WebCodecsPlayer, MsePlayer, HlsPlayer, DashPlayer, MjpegPlayer];

export function playerById(id) {
  return PLAYERS.find((P) => P.id === id) || null;
}

/** The first supported player (after `after`, when the previous pick failed). */
export function autoPlayer(after = null) {
  const from = after ? PLAYERS.indexOf(after) + 1 : 0;
  return PLAYERS.slice(from).find((P) => P.supported() && !P.skipInAuto?.()) || MjpegPlayer;
}
