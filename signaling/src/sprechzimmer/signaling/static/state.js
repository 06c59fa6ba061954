// The call page's states (main[data-state]) and the one pure rule that picks the current one
// from what the page knows. No I/O: call.js gathers the facts, calls `callState()`, applies it.

export const State = Object.freeze({
  CONNECTING: "connecting", // socket opening, before `welcome`; or media being negotiated
  CONSENT: "consent", // admitted; waiting for the person to agree
  WAITING: "waiting", // joined but alone, or the appointment has not started
  CONNECTED: "connected", // media flowing with at least one other person
  RECONNECTING: "reconnecting", // socket or media path lost; retrying every 2 s
  ENDED: "ended", // left, expired, cancelled or replaced
  ERROR: "error", // could not join (error code shown)
});

/**
 * @param {object} facts
 * @param {string|null} facts.final ENDED or ERROR once the call is over for this page
 * @param {boolean} facts.admitted a `welcome` arrived on the current socket
 * @param {boolean} facts.wasAdmitted some earlier socket was admitted (→ reconnecting)
 * @param {boolean} facts.consented the person agreed
 * @param {boolean} facts.notStarted the appointment's start window is not reached
 * @param {string[]} facts.links connection states of the media links to other people
 * @param {number} facts.others other people joined (roster)
 * @param {boolean} [facts.mediaDown] a media link that was up is down and being repaired
 */
export function callState({ final, admitted, wasAdmitted, consented, notStarted, links, others, mediaDown = false }) {
  if (final) return final;
  if (!admitted) return wasAdmitted ? State.RECONNECTING : (notStarted ? State.WAITING : State.CONNECTING);
  if (!consented) return State.CONSENT;
  if (notStarted) return State.WAITING;
  if (mediaDown && others > 0) return State.RECONNECTING;
  if (links.includes("connected") && others > 0) return State.CONNECTED;
  if (others > 0) return State.CONNECTING;
  return State.WAITING;
}
