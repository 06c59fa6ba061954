// What this page sends: the outgoing stream (the one the call's connections were built from)
// and the switches on it — another camera or microphone, the other side of a phone, the screen
// instead of the camera and back. Every switch is `RTCRtpSender.replaceTrack` on the senders
// that exist (PeerLink / SfuLink `replaceTrack`): no renegotiation, and a frame transform on a
// sender (end-to-end encryption) stays where it is. The stream is changed in place, so a
// connection made later (someone joins, a rejoin) sends what is sent now. While the screen is
// shared the camera is off (its light too) and opened again afterwards: the stream then holds
// every live track, and stopping it at the end of the call stops them all.

import { nextCameraConstraints } from "./devices.js";

const CAMERA = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };

export class LocalMedia {
  /**
   * @param {MediaStream} stream the outgoing stream from openLocalMedia()
   * @param {() => Iterable<{replaceTrack: (track: MediaStreamTrack) => Promise<void>}>} links
   *   the call's current connections
   * @param {() => void} onChange what is sent changed (sharing started or stopped, a device)
   */
  constructor(stream, links, onChange) {
    this.stream = stream;
    this.links = links;
    this.onChange = onChange;
    this.camera = stream.getVideoTracks()[0] ?? null;
    this.cameraWhileSharing = null; // the constraints that open the camera again
    this.screen = null;
  }

  get microphone() {
    return this.stream.getAudioTracks()[0] ?? null;
  }

  get sharing() {
    return this.screen !== null;
  }

  /** Put `track` in the stream and on every sender in place of `old` (which is not stopped). */
  async send(old, track) {
    track.enabled = old ? old.enabled : true; // "Mikrofon aus" / "Kamera aus" stay as they were
    if (old) this.stream.removeTrack(old);
    this.stream.addTrack(track);
    await Promise.all(
      [...this.links()].map((link) =>
        link.replaceTrack(track).catch((error) => console.warn("replaceTrack", error.name)),
      ),
    );
  }

  /** Another camera, by device id or by constraints (facingMode); while sharing, the one to
   * come back to. */
  async useCamera(constraints) {
    if (this.sharing) {
      this.cameraWhileSharing = constraints;
      return;
    }
    const old = this.camera;
    const track = await openTrack("video", { ...CAMERA, ...constraints }, old);
    this.camera = track;
    await this.send(old, track);
    old?.stop();
    this.onChange();
  }

  async useMicrophone(deviceId) {
    const old = this.microphone;
    const track = await openTrack("audio", { deviceId: { exact: deviceId } }, old);
    await this.send(old, track);
    old?.stop();
    this.onChange();
  }

  /** Front ↔ back on a phone, else the next camera; false when there is none to switch to. */
  async switchCamera(cameras) {
    const settings = this.camera?.getSettings() ?? {};
    const constraints = nextCameraConstraints({
      cameras,
      currentId: settings.deviceId,
      facingMode: settings.facingMode,
      canPickFacing: canPickFacing(),
    });
    if (!constraints) return false;
    await this.useCamera(constraints);
    return true;
  }

  /** The screen (or a window, a tab) instead of the camera; back when the browser ends it. */
  async shareScreen() {
    if (this.sharing) return;
    const display = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const track = display.getVideoTracks()[0];
    track.contentHint = "detail"; // text stays sharp; the frame rate may drop instead
    track.addEventListener("ended", () => {
      this.stopSharing().catch((error) => console.warn("camera after sharing", error.name));
    }); // the browser's own "stop sharing"
    this.screen = track;
    const camera = this.camera;
    await this.send(this.stream.getVideoTracks()[0], track);
    if (camera) {
      this.cameraWhileSharing = { deviceId: { exact: camera.getSettings().deviceId } };
      camera.stop();
      this.camera = null;
    }
    this.onChange();
  }

  /** Back to the camera (opened again); without one, nothing more is sent. */
  async stopSharing() {
    const screen = this.screen;
    if (!screen) return;
    this.screen = null;
    try {
      if (this.cameraWhileSharing) {
        this.camera = await openTrack("video", { ...CAMERA, ...this.cameraWhileSharing }, null);
        await this.send(screen, this.camera);
      }
    } finally {
      this.cameraWhileSharing = null;
      if (this.stream.getVideoTracks().includes(screen)) this.stream.removeTrack(screen);
      screen.stop();
      this.onChange();
    }
  }
}

/** getUserMedia for one track; a phone that cannot open two cameras at once gets the old one
 * stopped first. */
async function openTrack(kind, constraints, old) {
  const ask = () => navigator.mediaDevices.getUserMedia({ [kind]: constraints });
  let stream;
  try {
    stream = await ask();
  } catch (error) {
    if (!old || error.name !== "NotReadableError") throw error;
    old.stop();
    stream = await ask();
  }
  return kind === "audio" ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
}

function canPickFacing() {
  return Boolean(navigator.mediaDevices.getSupportedConstraints?.().facingMode);
}
