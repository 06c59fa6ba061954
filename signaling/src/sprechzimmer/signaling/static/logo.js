// The practice's logo, top left: the URL comes in `welcome` (only admitted people get it), an
// <img> shows it (an SVG in an <img> runs no script), at most a third of the window's width and
// height and never larger than it is (style.css). A button minimises it; the choice is kept for
// this tab in sessionStorage.

import { t } from "./i18n.js";

const MINIMISED_KEY = "sprechzimmer.logo.minimised";
const byId = (id) => document.getElementById(id);

/** Show the logo at `url` (from `welcome.logo`); nothing if it does not load. */
export function showLogo(url) {
  const image = byId("logo-image");
  if (image.getAttribute("src") === url) return;
  image.addEventListener("load", () => { byId("practice-logo").hidden = false; }, { once: true });
  image.src = url;
  showMinimised(sessionStorage.getItem(MINIMISED_KEY) === "true");
}

function showMinimised(minimised) {
  byId("logo-image").hidden = minimised;
  const toggle = byId("logo-toggle");
  toggle.setAttribute("aria-expanded", String(!minimised));
  toggle.textContent = t(minimised ? "logo.show" : "logo.minimise");
}

byId("logo-toggle").addEventListener("click", () => {
  const minimised = !byId("logo-image").hidden;
  sessionStorage.setItem(MINIMISED_KEY, String(minimised));
  showMinimised(minimised);
});
