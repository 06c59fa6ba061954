// Network quality per person (good / medium / poor) for the indicator on each tile. Pure: the
// numbers come from netstats.js, the result is shown by ui.js.

export const Quality = Object.freeze({ GOOD: "good", MEDIUM: "medium", POOR: "poor" });

// Thresholds as the common call clients use them: a few percent loss is inaudible with Opus FEC,
// over ~10 % speech breaks up; a round trip over ~300 ms makes people talk over each other.
const LIMITS = {
  good: { loss: 0.02, rttMs: 300, bps: 500_000 },
  medium: { loss: 0.1, rttMs: 700, bps: 150_000 },
};

/**
 * @param {{loss: number|null, rttMs: number|null, bps: number|null, silent?: boolean}} facts
 *   loss fraction, round trip, bandwidth (outgoing estimate for oneself; null where unknown),
 *   silent: nothing arrived from them in the last interval
 * @returns {string|null} a Quality value, null when nothing is known yet
 */
export function qualityOf({ loss, rttMs, bps, silent = false }) {
  if (silent) return Quality.POOR;
  if (loss == null && rttMs == null && bps == null) return null;
  const within = ({ loss: l, rttMs: r, bps: b }) =>
    (loss ?? 0) <= l && (rttMs ?? 0) <= r && (bps ?? Infinity) >= b;
  if (within(LIMITS.good)) return Quality.GOOD;
  if (within(LIMITS.medium)) return Quality.MEDIUM;
  return Quality.POOR;
}
