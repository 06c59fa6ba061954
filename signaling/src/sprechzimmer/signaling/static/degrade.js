// Video gives way before audio: the ladder the page's own video steps down when its link cannot
// carry it, and up again when it can. Pure: monitor.js feeds the stats of each interval and
// applies the rung with RTCRtpSender.setParameters (no renegotiation).
//
// The bandwidth figure is the sender's estimate (`availableOutgoingBitrate`); in a group call it
// already includes the SFU's REMB, the minimum over everyone receiving this video, so a weak
// receiver lowers the sender too. Audio is never touched (Opus with in-band FEC needs ~40 kbit/s).

export const RUNGS = Object.freeze([
  { maxBitrate: 1_500_000, scaleResolutionDownBy: 1, maxFramerate: 30 },
  { maxBitrate: 700_000, scaleResolutionDownBy: 1.5, maxFramerate: 24 },
  { maxBitrate: 300_000, scaleResolutionDownBy: 2, maxFramerate: 15 },
  { maxBitrate: 120_000, scaleResolutionDownBy: 4, maxFramerate: 10 },
]);
/** The rung past the last: own video switched off, audio only. */
export const VIDEO_OFF = RUNGS.length;

const AUDIO_BPS = 40_000;
const DOWN_EVERY_MS = 2000; // one step down per interval: the encoder needs a moment to follow
const UP_AFTER_MS = 6000; // this long with room for the rung above before stepping up
const START_GRACE_MS = 5000; // the estimate starts at 300 kbit/s and ramps up: no judging before
const LOSS_DOWN = 0.1;
const LOSS_UP = 0.02;
const OFF_PROBE_MS = 10_000; // video off: try the lowest rung again after this long …
const OFF_PROBE_MAX_MS = 60_000; // … doubling up to this while the tries fail

/** What a rung needs from the link: most of its video cap plus the audio. */
function need(rung) {
  return rung >= VIDEO_OFF ? AUDIO_BPS : RUNGS[rung].maxBitrate * 0.6 + AUDIO_BPS;
}

/** The ladder of a link that just connected (full video). */
export function newLadder(now) {
  return { rung: 0, changedAt: now, startedAt: now, roomSince: null, probeMs: OFF_PROBE_MS, probing: false };
}

/**
 * One interval's decision.
 * @param {object} ladder from newLadder() or a previous nextRung()
 * @param {{bps: number|null, loss: number|null, limitation: string|null}} facts the outgoing
 *   bandwidth estimate, the loss the other end reports for this page's streams, and Chromium's
 *   qualityLimitationReason for the video
 * @param {number} now milliseconds
 * @returns {object} the new ladder (its `rung` is what to apply)
 */
export function nextRung(ladder, { bps, loss, limitation }, now) {
  const { rung } = ladder;
  const lossy = loss != null && loss > LOSS_DOWN;
  const starved =
    rung < VIDEO_OFF && bps != null && bps < need(rung) && limitation === "bandwidth" &&
    now - ladder.startedAt >= START_GRACE_MS;
  if ((lossy || starved) && rung < VIDEO_OFF && now - ladder.changedAt >= DOWN_EVERY_MS) {
    const down = rung + 1;
    // A failed try from "off" waits twice as long before the next one.
    const probeMs = ladder.probing && down === VIDEO_OFF
      ? Math.min(ladder.probeMs * 2, OFF_PROBE_MAX_MS) : ladder.probeMs;
    return { ...ladder, rung: down, changedAt: now, roomSince: null, probeMs, probing: false };
  }
  const clean = loss == null || loss <= LOSS_UP;
  if (rung === VIDEO_OFF) {
    if (clean && now - ladder.changedAt >= ladder.probeMs) {
      return { ...ladder, rung: VIDEO_OFF - 1, changedAt: now, roomSince: null, probing: true };
    }
    return ladder;
  }
  const room = rung > 0 && clean && !lossy && (bps == null || bps >= need(rung - 1));
  if (!room) return ladder.roomSince === null ? ladder : { ...ladder, roomSince: null };
  const roomSince = ladder.roomSince ?? now;
  if (now - roomSince >= UP_AFTER_MS && now - ladder.changedAt >= UP_AFTER_MS) {
    return { ...ladder, rung: rung - 1, changedAt: now, roomSince: null, probeMs: OFF_PROBE_MS, probing: false };
  }
  return { ...ladder, roomSince };
}

/**
 * The video sender's encoding parameters for a rung (merged into getParameters().encodings[0]).
 * @returns {{active: boolean, maxBitrate?: number, scaleResolutionDownBy?: number, maxFramerate?: number}}
 */
export function encodingFor(rung) {
  return rung >= VIDEO_OFF ? { active: false } : { active: true, ...RUNGS[rung] };
}
