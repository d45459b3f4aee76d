// jmuxer.html's player (a file, not inline: the Content-Security-Policy allows no inline script).
// maxDelay: jmuxer seeks to the live edge (checked once a second) when further behind.
// Connect only once its MediaSource is open (onReady): jmuxer 2.1.1 creates its SourceBuffer
// when the first frames are ready, and if that is before 'sourceopen' (the server's cached
// GOP arrives at once) it never does, and the video stays black.
var ws = null;
var jmuxer = new JMuxer({node: 'player', mode: 'video', flushingTime: 0, fps: 30, maxDelay: 200,
  onReady: function () { if (!ws) connect(); }});
function connect() {
  var url = new URL('ws/h264', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  ws = new WebSocket(url.href);
  ws.binaryType = 'arraybuffer';
  ws.addEventListener('message', function (event) {
    jmuxer.feed({video: new Uint8Array(event.data)});
  });
  window.ws = ws;
}
window.jmuxer = jmuxer;
