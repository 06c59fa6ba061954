// The verification code people compare aloud (docs/e2ee.md, "Verification code"): SHA-256 over
// a label and the call's keys in sorted order, shown as 12 digits in groups of three. Group calls
// hash every participant's X25519 public key, 1:1 calls the two DTLS certificate fingerprints.
// A server that swapped keys would have to find keys giving the same 40-bit code within the
// join; 6 digits (20 bits) would fall to a search of a second, 12 do not.

import { fingerprint } from "../peer.js";

const encoder = new TextEncoder();
const LABELS = { group: "sprechzimmer verification v1 group", p2p: "sprechzimmer verification v1 p2p" };
const DIGITS = 12n;

/** The code for `items` (strings), the same whatever their order. */
export async function verificationCode(kind, items) {
  const parts = [LABELS[kind], ...[...items].sort()].map((text) => encoder.encode(text));
  const input = new Uint8Array(parts.reduce((n, p) => n + 2 + p.length, 0));
  let at = 0;
  for (const part of parts) {
    input[at] = part.length >> 8; // length-prefixed: no two lists hash the same bytes
    input[at + 1] = part.length & 0xff;
    input.set(part, at + 2);
    at += 2 + part.length;
  }
  return formatCode(new Uint8Array(await crypto.subtle.digest("SHA-256", input)));
}

/** The first 64 bits of `digest` as 12 decimal digits, "123 456 789 012". */
export function formatCode(digest) {
  let value = 0n;
  for (const byte of digest.subarray(0, 8)) value = (value << 8n) | BigInt(byte);
  const digits = (value % 10n ** DIGITS).toString().padStart(Number(DIGITS), "0");
  return digits.match(/.{3}/g).join(" ");
}

/** 1:1: the code over the DTLS fingerprints of both ends (null until both are known). */
export function p2pCode(localSdp, remoteSdp) {
  const prints = [localSdp, remoteSdp].map((sdp) => fingerprint(sdp));
  if (prints.some((print) => !print)) return Promise.resolve(null);
  // "sha-256 AB:CD:…": the same text on both sides whatever case a browser writes
  return verificationCode("p2p", prints.map((print) => {
    const [algorithm, value = ""] = print.split(/\s+/);
    return `${algorithm.toLowerCase()} ${value.toUpperCase()}`;
  }));
}
