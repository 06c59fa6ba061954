// One 1:1 peer connection to another browser, relayed through signaling (`sdp`/`ice` to their
// peer id). The person who joined later offers; if both offer at once (a race around a join),
// the one with the smaller peer id is "polite" and answers instead, as in WebRTC's perfect
// negotiation pattern.

import { candidateMessage } from "./media.js";

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
    this.offered = false;
    this.pendingCandidates = [];
    this.pc = new RTCPeerConnection(config);
    for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
    this.pc.addEventListener("icecandidate", (event) => {
      const candidate = candidateMessage(event.candidate);
      if (candidate) this.send("ice", { to: peerId, candidate });
    });
    this.stream = null; // the other person's media, once it arrives
    this.pc.addEventListener("track", (event) => {
      this.stream = event.streams[0] ?? new MediaStream([event.track]);
      onStream(this.stream);
    });
    this.pc.addEventListener("connectionstatechange", () => {
      if (this.pc.connectionState === "failed" && this.offered) this.offer({ iceRestart: true });
      onChange();
    });
  }

  get connectionState() {
    return this.pc.connectionState;
  }

  /** Whether an offer from the other side means they started over (e.g. reloaded the page). */
  get established() {
    return this.pc.signalingState === "stable" && this.pc.remoteDescription !== null;
  }

  async offer(options = {}) {
    this.offered = true;
    const offer = await this.pc.createOffer(options);
    await this.pc.setLocalDescription(offer);
    this.send("sdp", { to: this.peerId, description: descriptionMessage(this.pc.localDescription) });
  }

  /** Returns false when an offer collided and this side keeps its own (impolite). */
  async acceptDescription(description) {
    const colliding = description.type === "offer" && this.pc.signalingState !== "stable";
    if (colliding && !this.polite) return false;
    await this.pc.setRemoteDescription(description); // implicit rollback when polite
    for (const candidate of this.pendingCandidates.splice(0)) await this.addCandidate(candidate);
    if (description.type === "offer") {
      this.offered = false;
      await this.pc.setLocalDescription();
      this.send("sdp", { to: this.peerId, description: descriptionMessage(this.pc.localDescription) });
    }
    return true;
  }

  async acceptCandidate(candidate) {
    if (!candidate) return;
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
      console.warn("ice candidate not usable", error.name);
    }
  }

  close() {
    this.pc.close();
  }
}

export function descriptionMessage(description) {
  return { type: description.type, sdp: description.sdp };
}
