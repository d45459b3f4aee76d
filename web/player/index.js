// The player registry. A player is a class with:
//   static id, static label, static supported() -> bool
//   constructor({onState})   onState({kind: 'connecting'|'reconnecting'|'playing'|'blocked'|'error'|'idle', text})
//   start(container)  stop()  stats() -> {width, height, fps, bitrate, delay, delaySource, …}
//   optional restart(): called when the status poll sees that the daemon restarted.
// Order matters: "Auto" picks the first supported one. (HLS goes between MSE and MJPEG.)

import { MsePlayer } from './mse.js';
import { MjpegPlayer } from './mjpeg.js';
import { HlsPlayer } from './hls.js';

export const PLAYERS = [MsePlayer, HlsPlayer, MjpegPlayer];

export function playerById(id) {
  return PLAYERS.find((P) => P.id === id) || null;
}

export function autoPlayer() {
  return PLAYERS.find((P) => P.supported()) || MjpegPlayer;
}
