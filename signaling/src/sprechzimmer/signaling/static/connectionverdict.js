// The connection test's judgement: from measured facts to a result a layperson understands.
// Pure: no DOM, no WebRTC, no clock. connectiontest.js measures and shows; this decides.
// Every result is `{ level, key }`: level "ok" | "warn" | "fail" | "pending", key the i18n text
// (what we found and what to do).

export const Level = Object.freeze({ OK: "ok", WARN: "warn", FAIL: "fail", PENDING: "pending" });

/** The bandwidth guidance: what a call needs through the server, in bit/s, per person. */
export const GUIDANCE = Object.freeze({ pairBps: 2_000_000, groupBps: 8_000_000 });

/** Loudest microphone level (0…1, RMS) that still counts as silence. */
export const SILENCE = 0.01;
/** How long the microphone is listened to before "we heard nothing" is said. */
export const LISTEN_MS = 3000;
/** How long a camera may take to deliver its first picture. */
export const PICTURE_MS = 5000;
/** Round-trip time through the server above which people notice the delay. */
export const SLOW_RTT_MS = 300;

const result = (level, key) => Object.freeze({ level, key });

/** What getUserMedia's error name means for the person: no permission, no device, in use. */
function deviceProblem(errorName, kind) {
  if (errorName === "NotAllowedError" || errorName === "SecurityError") {
    return result(Level.FAIL, `test.${kind}.denied`);
  }
  if (errorName === "NotFoundError" || errorName === "OverconstrainedError") {
    return result(Level.FAIL, `test.${kind}.missing`);
  }
  if (errorName === "NotReadableError" || errorName === "AbortError") {
    return result(Level.FAIL, `test.${kind}.busy`);
  }
  return result(Level.FAIL, `test.${kind}.failed`);
}

/**
 * @param {object} facts
 * @param {string|null} facts.errorName getUserMedia's error for the camera, if any
 * @param {boolean} facts.opened the camera was opened
 * @param {number} facts.width width of the first picture shown (0 until one arrived)
 * @param {number} facts.waitedMs since the camera was opened
 */
export function cameraVerdict({ errorName, opened, width, waitedMs }) {
  if (errorName) return deviceProblem(errorName, "camera");
  if (!opened) return result(Level.PENDING, "test.camera.pending");
  if (width > 0) return result(Level.OK, "test.camera.ok");
  if (waitedMs < PICTURE_MS) return result(Level.PENDING, "test.camera.pending");
  return result(Level.FAIL, "test.camera.no-picture");
}

/**
 * @param {object} facts
 * @param {string|null} facts.errorName getUserMedia's error for the microphone, if any
 * @param {boolean} facts.opened the microphone was opened
 * @param {number} facts.peak loudest level heard so far (0…1)
 * @param {number} facts.listenedMs since the microphone was opened
 */
export function microphoneVerdict({ errorName, opened, peak, listenedMs }) {
  if (errorName) return deviceProblem(errorName, "microphone");
  if (!opened) return result(Level.PENDING, "test.microphone.pending");
  if (peak > SILENCE) return result(Level.OK, "test.microphone.ok");
  if (listenedMs < LISTEN_MS) return result(Level.PENDING, "test.microphone.pending");
  return result(Level.WARN, "test.microphone.silent");
}

/**
 * Reaching the platform's TURN server.
 * @param {object} facts
 * @param {null|"issued"|"rate-limited"|"none"|"error"} facts.credentials what signaling
 *   answered (null: not yet)
 * @param {boolean} facts.relayed a connection through the server came up, both ends relayed
 * @param {number[]} facts.errorCodes the icecandidateerror codes seen
 * @param {boolean} facts.done the attempt is over (connected, failed or timed out)
 */
export function turnVerdict({ credentials, relayed, errorCodes, done }) {
  if (credentials === null) return result(Level.PENDING, "test.turn.pending");
  if (credentials === "rate-limited") return result(Level.WARN, "test.turn.rate-limited");
  if (credentials === "none") return result(Level.WARN, "test.turn.none");
  if (credentials === "error") return result(Level.FAIL, "test.turn.error");
  if (relayed) return result(Level.OK, "test.turn.ok");
  if (!done) return result(Level.PENDING, "test.turn.pending");
  if (errorCodes.some((code) => code === 401 || code === 403 || code === 437)) {
    return result(Level.FAIL, "test.turn.refused");
  }
  return result(Level.FAIL, "test.turn.unreachable");
}

/** bit/s from `bytes` received in `ms` milliseconds (0 when nothing was measured). */
export function bitsPerSecond(bytes, ms) {
  return ms > 0 && bytes > 0 ? (bytes * 8 * 1000) / ms : 0;
}

/**
 * The measured throughput against the guidance: ≥ 8 Mbit/s for groups of five, ≥ 2 Mbit/s for
 * two people.
 * @param {object} facts
 * @param {boolean} facts.done the network part of the test is over
 * @param {boolean} facts.measured a measurement through the server ran
 * @param {number} facts.bps its result in bit/s
 */
export function bandwidthVerdict({ done, measured, bps }) {
  if (!done) return result(Level.PENDING, "test.bandwidth.pending");
  if (!measured) return result(Level.FAIL, "test.bandwidth.not-measured");
  if (bps >= GUIDANCE.groupBps) return result(Level.OK, "test.bandwidth.group");
  if (bps >= GUIDANCE.pairBps) return result(Level.WARN, "test.bandwidth.pair");
  return result(Level.FAIL, "test.bandwidth.low");
}

/** The delay through the server; `rttMs` null when unknown. */
export function delayVerdict(rttMs) {
  if (rttMs === null || rttMs === undefined) return null;
  if (rttMs <= SLOW_RTT_MS) return result(Level.OK, "test.delay.ok");
  return result(Level.WARN, "test.delay.slow");
}

/** The whole test in one line: the worst of the results (pending while any is pending). */
export function overallVerdict(results) {
  const levels = results.filter(Boolean).map((r) => r.level);
  if (levels.includes(Level.PENDING)) return result(Level.PENDING, "test.overall.pending");
  if (levels.includes(Level.FAIL)) return result(Level.FAIL, "test.overall.fail");
  if (levels.includes(Level.WARN)) return result(Level.WARN, "test.overall.warn");
  return result(Level.OK, "test.overall.ok");
}
