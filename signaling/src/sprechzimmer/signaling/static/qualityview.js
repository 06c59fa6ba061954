// What the page shows about network quality: a three-bar badge with a text alternative on each
// tile (`data-quality` = good/medium/poor on the figure, own picture included), a notice on a
// tile whose picture the other person's link switched off, and a notice when one's own video is
// paused to keep the audio. No decisions here: monitor.js says what to show.

import { t } from "./i18n.js";

const LABELS = {
  good: () => t("quality.good"),
  medium: () => t("quality.medium"),
  poor: () => t("quality.poor"),
};

const tileOf = (key) => document.querySelector(`[data-tile="${CSS.escape(key)}"]`);

function badge(figure, label) {
  let element = figure.querySelector(":scope > .quality");
  if (!element) {
    element = document.createElement("span");
    element.className = "quality";
    element.setAttribute("role", "img");
    element.append(...[1, 2, 3].map(() => document.createElement("i")));
    figure.append(element);
  }
  if (element.getAttribute("aria-label") !== label) element.setAttribute("aria-label", label);
  element.title = label;
}

function showQuality(figure, level) {
  if (!figure || !level || figure.dataset.quality === level) return;
  figure.dataset.quality = level;
  badge(figure, LABELS[level]());
}

/** The quality of the person in tile `key` (null: not known yet, nothing shown). */
export function showTileQuality(key, level) {
  showQuality(tileOf(key), level);
}

/** The page's own link (the worst of its connections). */
export function showOwnQuality(level) {
  showQuality(document.querySelector("figure.self"), level);
}

function notice(figure, id, text) {
  let element = figure.querySelector(`:scope > .notice[data-notice="${id}"]`);
  if (!text) {
    element?.remove();
    return;
  }
  if (!element) {
    element = document.createElement("p");
    element.className = "notice";
    element.dataset.notice = id;
    element.setAttribute("role", "status");
    figure.append(element);
  }
  if (element.textContent !== text) element.textContent = text;
}

/** Their audio arrives but their picture does not: say so instead of showing a frozen frame. */
export function showTilePaused(key, paused) {
  const figure = tileOf(key);
  if (!figure || figure.hasAttribute("data-video-paused") === paused) return;
  figure.toggleAttribute("data-video-paused", paused);
  notice(figure, "paused", paused ? t("video.paused.remote") : "");
}

/** The own video is off to keep the audio going (the ladder's last rung). */
export function showOwnVideoPaused(paused) {
  const figure = document.querySelector("figure.self");
  if (!figure || figure.hasAttribute("data-video-paused") === paused) return;
  figure.toggleAttribute("data-video-paused", paused);
  notice(figure, "paused", paused ? t("video.paused.own") : "");
}
