// The call's media controls beyond mute / camera off / leave (those stay in call.js): switch
// camera, share the screen, and the device dialog (camera and microphone by name). Buttons are
// in call.html; this module wires them to a LocalMedia and keeps their labels and states true.

import { canSwitchCamera, deviceChoices } from "./devices.js";
import { t } from "./i18n.js";
import { LocalMedia } from "./localmedia.js";

const byId = (id) => document.getElementById(id);

/**
 * Wire the controls to the outgoing `stream` (after consent, once).
 * @param {MediaStream} stream
 * @param {() => Iterable<{replaceTrack: (track: MediaStreamTrack) => Promise<void>}>} links
 */
export function attachControls(stream, links) {
  const media = new LocalMedia(stream, links, () => showSending(media));
  let cameras = [];
  let microphones = [];

  async function refreshDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    cameras = deviceChoices(devices, "videoinput", (n) => t("devices.camera.n", { n }));
    microphones = deviceChoices(devices, "audioinput", (n) => t("devices.microphone.n", { n }));
    const facing = media.camera?.getSettings().facingMode;
    const canPickFacing = Boolean(navigator.mediaDevices.getSupportedConstraints?.().facingMode);
    byId("switch-camera").hidden = !canSwitchCamera({ cameras, facingMode: facing, canPickFacing });
    fillSelect(byId("camera-select"), cameras, media.camera?.getSettings().deviceId);
    fillSelect(byId("microphone-select"), microphones, media.microphone?.getSettings().deviceId);
  }

  byId("share-screen").hidden = !navigator.mediaDevices.getDisplayMedia;
  byId("devices").hidden = false;
  void refreshDevices();
  navigator.mediaDevices.addEventListener("devicechange", () => void refreshDevices());

  onAction("switch-camera", async () => {
    if (await media.switchCamera(cameras)) await refreshDevices();
  });
  onAction("share-screen", () => (media.sharing ? media.stopSharing() : media.shareScreen()));
  byId("devices").addEventListener("click", () => byId("device-dialog").showModal());
  onChange("camera-select", (id) => media.useCamera({ deviceId: { exact: id } }));
  onChange("microphone-select", (id) => media.useMicrophone(id));
  showSending(media);
}

/** Labels and states that follow what is sent: the share button, the own picture's mirror. */
function showSending(media) {
  const share = byId("share-screen");
  share.setAttribute("aria-pressed", String(media.sharing));
  share.textContent = t(media.sharing ? "controls.share.stop" : "controls.share.start");
  byId("switch-camera").disabled = media.sharing; // the camera is off while sharing
  const self = byId("self-view");
  self.dataset.source = media.sharing ? "screen" : "camera"; // a screen is not mirrored
  // The element shows the stream's current tracks only once it is given the stream again.
  self.srcObject = null;
  self.srcObject = media.stream;
  byId("media-notice").textContent = "";
}

function fillSelect(select, choices, currentId) {
  select.replaceChildren(
    ...choices.map((choice) => new Option(choice.label, choice.id, false, choice.id === currentId)),
  );
  select.disabled = choices.length < 2;
}

/** A button whose action may fail (a device gone, sharing refused): said in the page. */
function onAction(id, action) {
  byId(id).addEventListener("click", async () => {
    try {
      await action();
    } catch (error) {
      showFailure(error);
    }
  });
}

function onChange(id, action) {
  byId(id).addEventListener("change", async (event) => {
    try {
      await action(event.target.value);
    } catch (error) {
      showFailure(error);
    }
  });
}

function showFailure(error) {
  console.warn("media control", error.name);
  // Refusing the screen-share prompt is a choice, not an error.
  if (error.name === "NotAllowedError" || error.name === "AbortError") return;
  byId("media-notice").textContent = t("devices.failed");
}
