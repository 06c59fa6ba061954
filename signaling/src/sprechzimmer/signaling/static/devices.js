// Which camera and microphone to offer and to switch to. Pure decisions, no I/O: the shell
// (localmedia.js) asks the browser and passes the answers in.

/**
 * The cameras and microphones of `enumerateDevices()` as `{id, label}` choices. Labels are
 * empty before permission; then a numbered fallback ("Kamera 2") keeps every choice nameable.
 * @param {MediaDeviceInfo[]} devices
 * @param {"videoinput" | "audioinput"} kind
 * @param {(n: number) => string} fallback label for the n-th device (1-based)
 */
export function deviceChoices(devices, kind, fallback) {
  return devices
    .filter((device) => device.kind === kind && device.deviceId)
    .map((device, index) => ({ id: device.deviceId, label: device.label || fallback(index + 1) }));
}

const OTHER_FACING = { user: "environment", environment: "user" };

/**
 * The video constraints that switch away from the current camera: the other side of a phone
 * (`facingMode`) where the camera says which side it faces and the browser can pick by side,
 * else the next camera in the list. Null when there is nothing to switch to.
 * @param {object} facts
 * @param {{id: string}[]} facts.cameras
 * @param {string | undefined} facts.currentId `getSettings().deviceId` of the camera in use
 * @param {string | undefined} facts.facingMode `getSettings().facingMode` of the camera in use
 * @param {boolean} facts.canPickFacing the browser supports the `facingMode` constraint
 */
export function nextCameraConstraints({ cameras, currentId, facingMode, canPickFacing }) {
  if (canPickFacing && OTHER_FACING[facingMode]) {
    return { facingMode: { exact: OTHER_FACING[facingMode] } };
  }
  if (cameras.length < 2) return null;
  const at = cameras.findIndex((camera) => camera.id === currentId);
  return { deviceId: { exact: cameras[(at + 1) % cameras.length].id } };
}

/** Whether a camera switch button makes sense: two cameras, or a camera that faces a side. */
export function canSwitchCamera({ cameras, facingMode, canPickFacing }) {
  return cameras.length >= 2 || Boolean(canPickFacing && OTHER_FACING[facingMode]);
}
