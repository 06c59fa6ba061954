// When to reconnect and how: the call page's recovery policy as pure functions. No I/O, no timers:
// call.js and monitor.js feed in what they saw and carry out what comes back.
//
// Like LiveKit's client: try the cheap repair first ("resume": the socket back with its `resume`
// token; an ICE restart on the existing 1:1 connection, which keeps DTLS and the other side's
// state), and if the link is still down a retry later, start it over ("rejoin": a new
// RTCPeerConnection, a new offer). Unlike LiveKit's growing delays the interval is fixed at 2 s
// (the promise the page makes: "Wir versuchen es alle 2 Sekunden"), with the first try at once.
// A group call's SFU (aiortc) cannot restart ICE, so its only repair is a new connection on the
// same seat, which the SFU takes as replacing the old one.

export const RETRY_MS = 2000;
// A connected link that received no bytes for this long is taken as dead. Media arrives every
// 20 ms (Opus) and RTCP at least every second, so silence this long means the path is broken;
// Chromium's own `disconnected` comes only after ~2.5 s, `failed` after ~30 s.
export const SILENT_MS = 1500;
// ICE restarts before starting over with a new connection.
export const RESUMES_BEFORE_REJOIN = 1;
// An attempt still negotiating (ICE checking, DTLS handshaking) is not cut short by the next
// one at 2 s — on a loaded machine a fresh connection's DTLS can take longer, and starting over
// would never let one finish — but only up to this long.
export const ATTEMPT_MAX_MS = 5000;
// A group page's connection to the SFU that never came up is started over when it failed, or
// after this long without connecting (a first TURN allocation or DTLS handshake that never
// finishes would otherwise leave the page in `connecting` for good). 1:1 links have PeerLink's
// own restart for this.
export const FIRST_CONNECT_MS = 15000;

export const Action = Object.freeze({
  NONE: "none",
  RESUME: "resume", // ICE restart on the existing connection
  REJOIN: "rejoin", // a new connection (new RTCPeerConnection, new offer)
});

/** Delay before the `attempt`-th (0-based) new socket since the last one was admitted. */
export function socketRetryDelay(attempt) {
  return attempt === 0 ? 0 : RETRY_MS;
}

/** A media link's watch before it was ever up: nothing to repair yet. */
export function newWatch() {
  return {
    up: false, wasUp: false, connected: false, failed: false, firstSeenAt: null, bytes: 0, lastBytesAt: 0,
    downSince: null, attempts: 0, lastAttemptAt: 0,
  };
}

/**
 * Fold one observation of a link into its watch.
 * @param {object} watch from newWatch() or a previous observe()
 * @param {{connectionState: string, iceConnectionState: string, bytesReceived: number|null}} sample
 *   the link's current connection: states and the bytes its candidate pairs received
 *   (null when nobody sends to this page, e.g. alone with the SFU: silence then means nothing)
 * @param {number} now milliseconds (any monotonic clock)
 */
export function observe(watch, { connectionState, iceConnectionState, bytesReceived }, now) {
  const next = { ...watch };
  const connected = connectionState === "connected" && iceConnectionState !== "disconnected";
  if (bytesReceived === null || bytesReceived !== watch.bytes || (connected && !watch.connected)) {
    next.lastBytesAt = now; // bytes came, none are expected, or just connected: silence counts from here
  }
  next.bytes = bytesReceived ?? watch.bytes;
  next.connected = connected;
  next.failed = connectionState === "failed";
  next.firstSeenAt = watch.firstSeenAt ?? now;
  next.up = connected && now - next.lastBytesAt <= SILENT_MS;
  if (next.up) {
    next.wasUp = true;
    next.downSince = null;
    next.attempts = 0;
  } else if (next.wasUp && next.downSince === null) {
    next.downSince = now;
  }
  return next;
}

/** Whether the link was up and is not now (the page shows `reconnecting`). */
export function isDown(watch) {
  return watch.wasUp && !watch.up;
}

/**
 * What to do about a link now: nothing, resume (ICE restart) or rejoin (new connection).
 * @param {object} watch the link's watch after observe()
 * @param {number} now milliseconds
 * @param {{canSignal: boolean, drives: boolean, resumable: boolean, pending?: boolean}} situation
 *   canSignal: the socket is admitted (an offer can be sent); drives: this side repairs the link
 *   (1:1: the impolite side, so both never start over at once; group: always); resumable: the
 *   other end can restart ICE (1:1 browser yes, the SFU no); pending: the link's connection is
 *   still negotiating (the last attempt may yet succeed)
 * @returns {{action: string, watch: object}}
 */
export function nextAction(watch, now, { canSignal, drives, resumable, pending = false }) {
  if (!canSignal || !drives) return { action: Action.NONE, watch };
  if (!watch.wasUp && !resumable) return firstConnect(watch, now);
  if (!isDown(watch)) return { action: Action.NONE, watch };
  const wait = pending ? ATTEMPT_MAX_MS : RETRY_MS;
  if (watch.attempts > 0 && now - watch.lastAttemptAt < wait) return { action: Action.NONE, watch };
  const action = resumable && watch.attempts < RESUMES_BEFORE_REJOIN ? Action.RESUME : Action.REJOIN;
  return { action, watch: { ...watch, attempts: watch.attempts + 1, lastAttemptAt: now } };
}

/** A connection to the SFU that never came up: a new one once it failed or took too long. */
function firstConnect(watch, now) {
  const since = watch.attempts > 0 ? watch.lastAttemptAt : watch.firstSeenAt;
  const failedFor = watch.failed ? now - since >= RETRY_MS : false;
  if (since === null || (!failedFor && now - since < FIRST_CONNECT_MS)) {
    return { action: Action.NONE, watch };
  }
  return { action: Action.REJOIN, watch: { ...watch, attempts: watch.attempts + 1, lastAttemptAt: now } };
}
