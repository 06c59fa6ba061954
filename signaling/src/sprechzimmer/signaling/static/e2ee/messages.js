// The payloads of `e2e` messages (docs/e2ee.md): binary, version 1, as unpadded base64url.
//
//   announce: | 1 | 1 | X25519 public key (32) |                                        34 bytes
//   key:      | 1 | 2 | sender's public key (32) | key index (1) | IV (12) | sealed key (48) | 95
//
// A key message's sealed key is the sender's 32-byte key material under the pairwise key, with
// keyAad() as additional data. Pure: no I/O; parsing is strict (version, type, exact length).

import { MATERIAL_BYTES, PUBLIC_KEY_BYTES } from "./keys.js";

export const VERSION = 1;
export const Kind = Object.freeze({ ANNOUNCE: 1, KEY: 2 });
const SEAL_IV_BYTES = 12;
const SEALED_BYTES = MATERIAL_BYTES + 16;
const LENGTHS = { [Kind.ANNOUNCE]: 2 + PUBLIC_KEY_BYTES, [Kind.KEY]: 2 + PUBLIC_KEY_BYTES + 1 + SEAL_IV_BYTES + SEALED_BYTES };
export const MAX_PAYLOAD_CHARS = 16384; // signaling's limit for an `e2e` payload
const AAD_LABEL = new TextEncoder().encode("sprechzimmer e2ee v1 key");

export class E2eeMessageError extends Error {}

export function toBase64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function fromBase64url(text) {
  if (typeof text !== "string" || text.length > MAX_PAYLOAD_CHARS || !/^[A-Za-z0-9_-]*$/.test(text)) {
    throw new E2eeMessageError("not unpadded base64url");
  }
  if (text.length % 4 === 1) throw new E2eeMessageError("not unpadded base64url");
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

export function encodeAnnounce(publicKey) {
  return toBase64url(Uint8Array.of(VERSION, Kind.ANNOUNCE, ...publicKey));
}

export function encodeKey({ publicKey, keyIndex, iv, sealed }) {
  return toBase64url(Uint8Array.of(VERSION, Kind.KEY, ...publicKey, keyIndex, ...iv, ...sealed));
}

/** {kind, publicKey} (+ keyIndex, iv, sealed for a key message); throws E2eeMessageError. */
export function parsePayload(payload) {
  const bytes = fromBase64url(payload);
  if (bytes.length < 2) throw new E2eeMessageError("too short");
  if (bytes[0] !== VERSION) throw new E2eeMessageError(`version ${bytes[0]}`);
  const kind = bytes[1];
  if (!(kind in LENGTHS)) throw new E2eeMessageError(`type ${kind}`);
  if (bytes.length !== LENGTHS[kind]) throw new E2eeMessageError(`length ${bytes.length} for type ${kind}`);
  const publicKey = bytes.slice(2, 2 + PUBLIC_KEY_BYTES);
  if (kind === Kind.ANNOUNCE) return { kind, publicKey };
  let at = 2 + PUBLIC_KEY_BYTES;
  const keyIndex = bytes[at];
  at += 1;
  const iv = bytes.slice(at, at + SEAL_IV_BYTES);
  const sealed = bytes.slice(at + SEAL_IV_BYTES);
  return { kind, publicKey, keyIndex, iv, sealed };
}

/** Additional data of a sealed key: label, sender's and recipient's public keys, key index. */
export function keyAad(senderPublic, recipientPublic, keyIndex) {
  const aad = new Uint8Array(AAD_LABEL.length + 2 * PUBLIC_KEY_BYTES + 1);
  aad.set(AAD_LABEL, 0);
  aad.set(senderPublic, AAD_LABEL.length);
  aad.set(recipientPublic, AAD_LABEL.length + PUBLIC_KEY_BYTES);
  aad[aad.length - 1] = keyIndex;
  return aad;
}
