// One 1:1 peer connection to another browser, relayed through signaling (`sdp`/`ice` to their
// peer id). The person who joined later offers; if both offer at once (a race around a join),
// WebRTC's "perfect negotiation" pattern sorts it out: the one with the smaller peer id is
// polite (rolls its offer back and answers), the other ignores the crossing offer.

import { candidateMessage, replaceSentTrack } from "./media.js";

// The side that offered restarts ICE when the connection fails, or when this long after an offer
// it has not gathered a single candidate: Chromium sometimes gets no TURN allocation (allocate
// timed out) and would then wait forever. Slow checks on a busy machine are left alone.
const GATHER_WITHIN_MS = 15000;

export class PeerLink {
  /**
   * @param {object} options
   * @param {string} options.peerId the other person's peer id
   * @param {boolean} options.polite whether to yield when offers cross
   * @param {RTCConfiguration} options.config ICE servers and transport policy from `welcome`
   * @param {MediaStream} options.stream own camera and microphone
   * @param {(type: string, fields: object) => void} options.send signaling
   * @param {(stream: MediaStream) => void} options.onStream the other person's media
   * @param {() => void} options.onChange connection state changed
   */
  constructor({ peerId, polite, config, stream, send, onStream, onChange }) {
    this.peerId = peerId;
    this.polite = polite;
    this.send = send;
    this.offered = false; // this side started the negotiation (so it restarts ICE)
    this.makingOffer = false;
    this.ignoringOffer = false;
    this.pendingCandidates = [];
    this.pc = new RTCPeerConnection(config);
    for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
    this.gathered = 0;
    this.pc.addEventListener("icecandidate", (event) => {
      const candidate = candidateMessage(event.candidate);
      if (!candidate) return;
      this.gathered += 1;
      this.send("ice", { to: peerId, candidate });
    });
    this.stream = null; // the other person's media, once it arrives
    this.pc.addEventListener("track", (event) => {
      this.stream = event.streams[0] ?? new MediaStream([event.track]);
      onStream(this.stream);
    });
    this.watchdog = null;
    this.everConnected = false; // once up, repairs are monitor.js's (reconnect.js's policy)
    this.pc.addEventListener("connectionstatechange", () => {
      if (this.pc.connectionState === "connected") {
        clearTimeout(this.watchdog);
        this.everConnected = true;
      }
      if (this.pc.connectionState === "failed" && this.offered && !this.everConnected) this.restart();
      onChange();
    });
  }

  get connectionState() {
    return this.pc.connectionState;
  }

  /**
   * Whether an offer from the other side comes from a new connection of theirs (they reloaded
   * the page, or dropped their end): its DTLS fingerprint is not the one this link knows. Every
   * RTCPeerConnection has its own certificate, so an ICE restart of the same connection (the
   * offerer's watchdog) keeps the fingerprint and is answered on this link. Taking that for a
   * new start would throw this side's TURN allocation, candidates and DTLS away on each restart,
   * and on a slow machine no attempt finished before the next restart.
   */
  startedOver(description) {
    const known = this.pc.remoteDescription;
    if (description.type !== "offer" || !known) return false;
    return fingerprint(description.sdp) !== fingerprint(known.sdp);
  }

  async offer({ iceRestart = false } = {}) {
    this.offered = true;
    clearTimeout(this.watchdog);
    this.gathered = 0;
    this.watchdog = setTimeout(() => {
      if (this.gathered === 0) this.restart();
    }, GATHER_WITHIN_MS);
    try {
      this.makingOffer = true;
      if (iceRestart) this.pc.restartIce();
      // Without arguments: an offer, or an answer if their offer got in first.
      await this.pc.setLocalDescription();
      this.sendLocalDescription();
    } finally {
      this.makingOffer = false;
    }
  }

  restart() {
    if (this.pc.connectionState === "closed" || this.pc.connectionState === "connected") return;
    if (!this.offered) return;
    // ICE is through and DTLS is still at it (a slow machine): a restart would only start over.
    if (["connected", "completed"].includes(this.pc.iceConnectionState)) return;
    this.restartIce();
  }

  /** An ICE restart on this connection: new candidates and TURN allocations, same DTLS. */
  restartIce() {
    if (this.pc.connectionState === "closed") return;
    console.info("call: restarting ICE");
    this.offer({ iceRestart: true }).catch((error) => console.warn("ice restart", error));
  }

  /** The mids this connection receives media on (for per-person stats). */
  get receivingMids() {
    return this.pc.getTransceivers().filter((t) => t.mid !== null && t.currentDirection !== "sendonly").map((t) => t.mid);
  }

  /** Returns false when an offer crossed this side's own and is ignored (impolite side). */
  async acceptDescription(description) {
    const crossing =
      description.type === "offer" && (this.makingOffer || this.pc.signalingState !== "stable");
    this.ignoringOffer = crossing && !this.polite;
    if (this.ignoringOffer) return false;
    if (description.type === "answer" && this.pc.signalingState !== "have-local-offer") {
      return false; // the answer to an offer this side has rolled back
    }
    await this.pc.setRemoteDescription(description); // implicit rollback when polite
    for (const candidate of this.pendingCandidates.splice(0)) await this.addCandidate(candidate);
    if (description.type === "offer") {
      this.offered = false;
      await this.pc.setLocalDescription();
      this.sendLocalDescription();
    }
    return true;
  }

  sendLocalDescription() {
    this.send("sdp", { to: this.peerId, description: descriptionMessage(this.pc.localDescription) });
  }

  async acceptCandidate(candidate) {
    if (!candidate || this.ignoringOffer) return;
    if (!this.pc.remoteDescription) {
      this.pendingCandidates.push(candidate);
      return;
    }
    await this.addCandidate(candidate);
  }

  async addCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (error) {
      if (!this.ignoringOffer) console.warn("ice candidate not usable", error.name);
    }
  }

  /** Send `track` instead of the current one of its kind: no renegotiation (localmedia.js). */
  replaceTrack(track) {
    return replaceSentTrack(this.pc, track);
  }

  close() {
    clearTimeout(this.watchdog);
    this.pc.close();
  }
}

/** The first `a=fingerprint:` line of an SDP (session or media level), or null. */
export function fingerprint(sdp) {
  return /^a=fingerprint:(.*)$/m.exec(sdp ?? "")?.[1]?.trim() ?? null;
}

export function descriptionMessage(description) {
  return { type: description.type, sdp: description.sdp };
}
