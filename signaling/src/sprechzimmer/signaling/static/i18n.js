// UI strings and formatting in the page's language. The server renders the same strings into the
// HTML; this module gives scripts the ones they need later (errors, states), from <html data-strings>.

const root = document.documentElement;

/** The page language: "de" (default) or "en". */
export const lang = root.lang === "en" ? "en" : "de";

const strings = JSON.parse(root.dataset.strings || "{}");

/** The string for `key`, with `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const text = strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** A same-origin path that keeps the page language (German needs no parameter). */
export function localPath(path) {
  return lang === "de" ? path : `${path}?lang=${lang}`;
}

/** `{date, time}` of an RFC 3339 instant in the viewer's own time zone. */
export function localDateTime(iso) {
  const when = new Date(iso);
  const locale = lang === "en" ? "en-GB" : "de-DE";
  const date = new Intl.DateTimeFormat(locale, {
    weekday: "long", day: "numeric", month: "long", year: "numeric",
  }).format(when);
  const time = new Intl.DateTimeFormat(locale, {
    hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  }).format(when);
  return { date, time };
}

/** A wait of `seconds` as words: "1 Sekunde", "45 Sekunden", "3 Minuten" (rounded up). */
export function duration(seconds) {
  const locale = lang === "en" ? "en-GB" : "de-DE";
  const long = seconds > 90;
  const unit = long ? "minute" : "second";
  const value = long ? Math.ceil(seconds / 60) : Math.max(1, Math.ceil(seconds));
  return new Intl.NumberFormat(locale, { style: "unit", unit, unitDisplay: "long" }).format(value);
}
