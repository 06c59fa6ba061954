// What the call page shows of end-to-end encryption: the verification code, which remote videos
// are being decrypted end to end (video[data-encrypted="true"]), and a rejected key message.
// Tiles are made by ui.js; markTiles() is called again whenever tiles change.

import { t } from "../i18n.js";

const decrypting = new Set(); // tile keys ("slot-<k>", or a peer id in 1:1) whose frames decrypt

export function showCode(code) {
  const box = document.getElementById("verification");
  box.hidden = !code;
  box.querySelector("[data-verification-code]").textContent = code ?? "";
}

export function setDecrypting(tileKey, ok) {
  if (ok) decrypting.add(tileKey);
  else decrypting.delete(tileKey);
  markTiles();
}

export function markTiles() {
  for (const video of document.querySelectorAll("figure[data-tile] video[data-remote]")) {
    if (decrypting.has(video.closest("figure").dataset.tile)) video.dataset.encrypted = "true";
    else delete video.dataset.encrypted;
  }
}

export function showRejected(name) {
  const alert = document.getElementById("e2ee-alert");
  alert.textContent = t("e2ee.rejected", { name });
  alert.hidden = false;
}

export function reset() {
  decrypting.clear();
  showCode(null);
}
