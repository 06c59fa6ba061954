// Everything the call page shows: which panel (by main[data-state]), texts, video tiles, buttons.
// No call logic here; call.js tells it what to show.

import { duration, localDateTime, t } from "./i18n.js";

const main = document.querySelector("main");
const byId = (id) => document.getElementById(id);

const FOCUS_ON_ENTER = {
  consent: "consent-heading",
  error: "error-heading",
  ended: "ended-heading",
};

/** Show `state` (one of state.js's State values); moves focus to the new panel's heading. */
export function showState(state) {
  if (main.dataset.state === state) return;
  main.dataset.state = state;
  const focus = FOCUS_ON_ENTER[state];
  if (focus) byId(focus).focus();
}

export function showConsent({ autostart, group }) {
  byId("consent-autostart").hidden = !autostart;
  byId("consent-e2ee").textContent = t(group ? "consent.e2ee.group" : "consent.e2ee.p2p");
}

/** The line above the videos: waiting, connecting, reconnecting … */
export function showStatus(text) {
  const status = byId("call-status");
  if (status.textContent !== text) status.textContent = text;
}

export function waitingText(scheduledStart) {
  if (scheduledStart && new Date(scheduledStart) > new Date()) {
    return t("waiting.scheduled", localDateTime(scheduledStart));
  }
  return t("waiting.alone");
}

// Errors the connection test page (/test) can help with.
const DEVICE_OR_NETWORK_ERRORS = new Set(["media-denied", "unsupported"]);

export function showError(code, { retryAfter, scheduledStart, retry } = {}) {
  const when = scheduledStart ? localDateTime(scheduledStart) : {};
  const wait = retryAfter ? duration(retryAfter) : "";
  byId("error-text").textContent = t(`error.${code}`, { wait, ...when });
  byId("retry").hidden = !retry;
  byId("connection-test").hidden = !DEVICE_OR_NETWORK_ERRORS.has(code);
}

export function showEnded(reason, { rejoin }) {
  byId("ended-text").textContent = t(`ended.${reason}`);
  byId("rejoin").hidden = !rejoin;
}

export function showSelf(stream) {
  byId("self-view").srcObject = stream;
  main.classList.add("in-call");
  document.body.classList.add("in-call");
}

export function personName(peer) {
  return peer?.name || t(peer?.role === "host" ? "person.host" : "person.client");
}

/** Show (or update) the video tile `key` with `stream`, labelled with the person's name. */
export function showRemote(key, stream, name) {
  let tile = document.querySelector(`[data-tile="${CSS.escape(key)}"]`);
  if (!tile) {
    tile = document.createElement("figure");
    tile.className = "tile";
    tile.dataset.tile = key;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.dataset.remote = "";
    const caption = document.createElement("figcaption");
    tile.append(video, caption);
    byId("remotes").append(tile);
  }
  const video = tile.querySelector("video");
  if (video.srcObject !== stream) video.srcObject = stream;
  tile.querySelector("figcaption").textContent = name;
  video.setAttribute("aria-label", t("video.remote", { name }));
  byId("remotes").dataset.count = String(byId("remotes").children.length);
}

/** Highlight the tile of whoever speaks (`key` null: nobody). */
export function markSpeaker(key) {
  for (const tile of byId("remotes").children) {
    tile.toggleAttribute("data-speaking", tile.dataset.tile === key);
  }
}

export function removeRemote(key) {
  document.querySelector(`[data-tile="${CSS.escape(key)}"]`)?.remove();
  byId("remotes").dataset.count = String(byId("remotes").children.length);
}

export function removeAllRemotes() {
  byId("remotes").replaceChildren();
  byId("remotes").dataset.count = "0";
}

/** Wire a toggle button; `onToggle(pressed)` returns the label key for the new state. */
export function toggleButton(id, onToggle) {
  const button = byId(id);
  button.addEventListener("click", () => {
    const pressed = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(pressed));
    button.textContent = t(onToggle(pressed));
  });
}

export function onClick(id, handler) {
  byId(id).addEventListener("click", handler);
}

export function onConsent(handler) {
  byId("consent-form").addEventListener("submit", (event) => {
    event.preventDefault();
    handler(byId("display-name").value.trim().slice(0, 64), event.submitter);
  });
}
