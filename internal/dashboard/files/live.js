// Live audit events over the WebSocket: a one-use ticket (a browser cannot
// set headers on a WebSocket), then {"type":"subscribe","topic":"events"}.
// A socket that closes on its own (a deploy, a network blip, the tier's
// connection limit) is opened again with backoff, as the Go connector
// does: 1 s doubling to 30 s with jitter, back to 1 s once subscribed. The
// status line says what happens in words, never just a close code.

const firstDelay = 1000;
const maxDelay = 30_000;

// Close codes in words (RFC 6455 and keyhub's 4000–4002).
const closeWords = {
  1000: 'closed',
  1001: 'the server is restarting',
  1006: 'the connection failed',
  1008: 'the server refused the connection',
  1011: 'the server had an error',
  1012: 'the server is restarting',
  1013: 'the server is busy',
  4000: 'the session ended',
  4001: 'the key was revoked',
  4002: 'it was closed from the Connections page',
};

/** LiveEvents keeps one subscribed socket open between start and stop. */
export class LiveEvents {
  /**
   * socketURL() gives a URL with a fresh ticket; onEvent(event) receives
   * each audit event; onStatus(text) the state in words; explain() says,
   * when a socket failed before it opened, why (or ''), e.g. the tier's
   * connection limit; canRetry() is false once the user is signed out.
   */
  constructor({ socketURL, onEvent, onStatus, explain, canRetry }) {
    Object.assign(this, { socketURL, onEvent, onStatus, explain, canRetry });
    this.socket = null;
    this.timer = null;
    this.delay = firstDelay;
    this.running = false;
    // Ids of the connections this tab opened: the Connections page does
    // not offer to close the page's own socket, which may still be
    // closing when it lists them.
    this.ownIds = new Set();
    this.onOnline = () => {
      if (this.running && !this.socket) {
        this.connect();
      }
    };
  }

  start() {
    this.stop();
    this.running = true;
    this.delay = firstDelay;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    window.removeEventListener('online', this.onOnline);
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.close(1000, 'page left');
    }
    this.onStatus('off');
  }

  async connect() {
    clearTimeout(this.timer);
    this.onStatus('connecting…');
    let url;
    try {
      url = await this.socketURL();
    } catch (err) {
      this.retry(err.status === 0 ? 'keyhub cannot be reached' : `no ticket (${err.message})`);
      return;
    }
    if (!this.running) {
      return;
    }
    const socket = new WebSocket(url);
    this.socket = socket;
    let opened = false;
    socket.addEventListener('open', () => {
      opened = true;
    });
    socket.addEventListener('message', (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      if (data.type === 'welcome') {
        this.ownIds.add(data.connection_id);
        socket.send(JSON.stringify({ type: 'subscribe', topic: 'events' }));
      } else if (data.type === 'subscribed') {
        this.delay = firstDelay;
        this.onStatus('on');
      } else if (data.type === 'event') {
        this.onEvent(data.event);
      }
    });
    socket.addEventListener('close', async (close) => {
      if (this.socket !== socket) {
        return; // replaced or stopped on purpose
      }
      this.socket = null;
      if (!this.running) {
        return;
      }
      if (close.code === 4000) {
        this.connect(); // the socket ended with the old access token; the session has a newer one
        return;
      }
      let why = closeWords[close.code] || `closed with code ${close.code}`;
      if (close.reason) {
        why += `: ${close.reason}`;
      }
      if (!opened) {
        // A refused upgrade reaches a page only as 1006, without the
        // answer: ask the API what the reason can be.
        why = (await this.explain().catch(() => '')) || why;
      }
      this.retry(why);
    });
  }

  // retry schedules the next connect after the current backoff, saying why.
  retry(why) {
    if (!this.running || !this.canRetry()) {
      this.onStatus(`off (${why})`);
      return;
    }
    const wait = Math.round(this.delay * (0.8 + Math.random() * 0.4));
    this.delay = Math.min(this.delay * 2, maxDelay);
    this.onStatus(`off (${why}). Reconnecting in ${Math.max(1, Math.round(wait / 1000))} s…`);
    this.timer = setTimeout(() => this.connect(), wait);
  }
}
