// A group call's one peer connection to the media pod's SFU (`sdp`/`ice` to "sfu"). The layout is
// what the media pod expects (docs/media-pod.md): one sendonly audio + video, then a recvonly
// audio + video pair per other seat ("slot"), VP8 and Opus only, all offered at join because the
// SFU never renegotiates. `slots` messages say whose media arrives in which pair.
//
// End-to-end encryption (e2ee/session.js): the frame transforms go onto these transceivers'
// senders and receivers in the constructor, right where they are created: before the offer,
// because Chromium ignores a transform set on a sender mid-call (frames would leave in the clear).

import { candidateMessage, preferCodec, replaceSentTrack } from "./media.js";
import { descriptionMessage } from "./peer.js";

const CODECS = { audio: "audio/opus", video: "video/vp8" };

export class SfuLink {
  /**
   * @param {object} options
   * @param {RTCConfiguration} options.config ICE servers (the pod's TURN) and transport policy
   * @param {MediaStream} options.stream own camera and microphone
   * @param {number} options.slots receive slots: maxParticipants − 1
   * @param {(type: string, fields: object) => void} options.send signaling
   * @param {() => void} options.onChange connection state changed
   * @param {import("./e2ee/session.js").E2eeSession} options.frames encrypts and decrypts frames
   */
  constructor({ config, stream, slots, send, onChange, frames }) {
    this.send = send;
    this.pc = new RTCPeerConnection({ ...config, ...frames.peerConnectionConfig, iceTransportPolicy: "relay" });
    for (const kind of ["audio", "video"]) {
      const track = kind === "audio" ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
      const transceiver = this.pc.addTransceiver(track ?? kind, { direction: "sendonly", streams: [stream] });
      preferCodec(transceiver, kind, CODECS[kind]);
      frames.attach(transceiver.sender, { side: "send", kind });
    }
    this.slotReceivers = [];
    for (let slot = 0; slot < slots; slot += 1) {
      const pair = {};
      for (const kind of ["audio", "video"]) {
        const transceiver = this.pc.addTransceiver(kind, { direction: "recvonly" });
        preferCodec(transceiver, kind, CODECS[kind]);
        frames.attach(transceiver.receiver, { side: "receive", kind, slot });
        pair[kind] = transceiver.receiver;
      }
      this.slotReceivers.push(pair);
    }
    this.pc.addEventListener("icecandidate", (event) => {
      const candidate = candidateMessage(event.candidate);
      if (candidate) this.send("ice", { to: "sfu", candidate });
    });
    this.pc.addEventListener("connectionstatechange", onChange);
  }

  get connectionState() {
    return this.pc.connectionState;
  }

  async offer() {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    this.send("sdp", { to: "sfu", description: descriptionMessage(this.pc.localDescription) });
  }

  async acceptDescription(description) {
    if (description.type === "answer") await this.pc.setRemoteDescription(description);
  }

  /** The mids of receive slot `slot`'s audio and video (for per-person stats). */
  slotMids(slot) {
    const pair = this.slotReceivers[slot];
    const mid = (receiver) => this.pc.getTransceivers().find((t) => t.receiver === receiver)?.mid;
    return pair ? [mid(pair.audio), mid(pair.video)].filter((m) => m != null) : [];
  }

  /** The media of receive slot `slot` as one stream (audio and video together, for lip sync). */
  slotStream(slot) {
    const pair = this.slotReceivers[slot];
    return pair ? new MediaStream([pair.audio.track, pair.video.track]) : null;
  }

  /** Send `track` on the sendonly sender of its kind: no renegotiation (localmedia.js). */
  replaceTrack(track) {
    return replaceSentTrack(this.pc, track);
  }

  close() {
    this.pc.close();
  }
}
