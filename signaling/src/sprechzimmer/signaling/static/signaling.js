// The WebSocket to signaling (protocol v1, docs/signaling.md): JSON frames {"v": 1, "type", ...}.
// One socket per attempt; the call decides about reconnecting. A ping every 20 s keeps proxies
// from closing an idle socket and notices a dead one (no pong within 10 s → closed as lost).

const PROTOCOL_VERSION = 1;
const PING_EVERY_MS = 20000;
const PONG_WITHIN_MS = 10000;

/** Close code for a socket this page gave up on (no pong): handled like a lost connection. */
export const CLOSE_LOST = 4000;

export class Signaling {
  /**
   * @param {{onMessage: (msg: object) => void, onClose: (code: number) => void}} handlers
   */
  constructor({ onMessage, onClose }) {
    this.onMessage = onMessage;
    this.onClose = onClose;
    this.ws = null;
    this.pingTimer = null;
    this.pongTimer = null;
  }

  /** Open a socket and send `hello` once it is open. */
  open(hello) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.send("hello", hello);
      this.pingTimer = setInterval(() => this.ping(), PING_EVERY_MS);
    });
    ws.addEventListener("message", (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return; // the server only sends JSON; anything else is ignored, not fatal
      }
      if (msg.type === "pong") {
        clearTimeout(this.pongTimer);
        return;
      }
      this.onMessage(msg);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.stopTimers();
      this.ws = null;
      this.onClose(event.code);
    });
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  send(type, fields = {}) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type, ...fields }));
    return true;
  }

  ping() {
    if (!this.send("ping")) return;
    clearTimeout(this.pongTimer);
    this.pongTimer = setTimeout(() => this.drop(CLOSE_LOST), PONG_WITHIN_MS);
  }

  /** Close the socket and report `code` at once (a dead socket may never fire "close"). */
  drop(code) {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    this.stopTimers();
    ws.close(code === CLOSE_LOST ? 4000 : 1000);
    this.onClose(code);
  }

  /** Close without reporting (leaving, or the page decided the call is over). */
  close() {
    const ws = this.ws;
    this.ws = null;
    this.stopTimers();
    ws?.close(1000);
  }

  stopTimers() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }
}
