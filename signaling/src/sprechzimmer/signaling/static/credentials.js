// How a person proves they belong to a call, kept out of every URL: the practice handle + code
// typed on the start page, or the token from an invitation link's fragment. They live in this
// tab's sessionStorage only (never sent anywhere but the WebSocket), so a reload rejoins, and are
// removed when the call ends.

const AUTH_KEY = "sprechzimmer.auth";
const START_ERROR_KEY = "sprechzimmer.startError";
const LINK_TOKEN = /^[0-9a-f]{64}$/;

/** A code as typed ("C3F E04 D96", "c3fe04d96") → "c3f-e04-d96", or null (as the server does). */
export function normalizeCode(text) {
  const digits = text.trim().toLowerCase().replace(/[\s\-_.\u2013\u2014]+/g, "");
  if (!/^[0-9a-f]{9}$/.test(digits)) return null;
  return `${digits.slice(0, 3)}-${digits.slice(3, 6)}-${digits.slice(6)}`;
}

/** A practice handle as typed ("Dr Muster ") → "dr-muster". */
export function normalizeHost(text) {
  return text.trim().toLowerCase().replace(/[\s_]+/g, "-");
}

/** The link token from a URL fragment ("#<64 hex>"), or null. */
export function linkToken(hash) {
  const token = hash.replace(/^#/, "").trim().toLowerCase();
  return LINK_TOKEN.test(token) ? token : null;
}

/** `{host, code}` or `{link}`: the `auth` of a `hello`. */
export function storeAuth(auth) {
  sessionStorage.setItem(AUTH_KEY, JSON.stringify(auth));
}

export function loadAuth() {
  try {
    const auth = JSON.parse(sessionStorage.getItem(AUTH_KEY) ?? "null");
    if (auth && (typeof auth.link === "string" || (typeof auth.host === "string" && typeof auth.code === "string"))) {
      return auth;
    }
  } catch {
    // unreadable: treated as absent
  }
  return null;
}

export function clearAuth() {
  sessionStorage.removeItem(AUTH_KEY);
}

/** An admission error for the start page to show next to the typed handle and code. */
export function storeStartError(error) {
  sessionStorage.setItem(START_ERROR_KEY, JSON.stringify(error));
}

export function takeStartError() {
  const raw = sessionStorage.getItem(START_ERROR_KEY);
  sessionStorage.removeItem(START_ERROR_KEY);
  try {
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

const RESUME_KEY = "sprechzimmer.resume";

/** The seat token from `welcome`: a reload of this tab gets the same seat back. */
export function storeResume(token) {
  if (token) sessionStorage.setItem(RESUME_KEY, token);
}

export function loadResume() {
  return sessionStorage.getItem(RESUME_KEY);
}

export function forgetCall() {
  clearAuth();
  sessionStorage.removeItem(RESUME_KEY);
}
