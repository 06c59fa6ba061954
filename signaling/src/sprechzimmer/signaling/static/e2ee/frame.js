// The encrypted frame format (docs/e2ee.md), the trailer format Jitsi and LiveKit share:
//
//   | clear prefix | AES-GCM ciphertext + 16-byte tag | IV (12) | IV length = 12 (1) | key index (1) |
//
// The clear prefix is what the media pod's SFU and the decoder may read: 10 bytes of a VP8 key
// frame (frame tag, start code, size), 3 of a VP8 delta frame (frame tag), 1 of Opus (TOC byte).
// The SFU detects key frames from bit 0 of the first byte (RFC 6386 §9.1; media-pod
// core/rtp.py vp8_keyframe_start), so both sides derive the prefix from that same bit. The prefix
// is the additional authenticated data: changing it breaks the tag. Runs in the worker and in
// Node (unit tests): WebCrypto only, no DOM.

export const IV_LENGTH = 12;
export const TAG_LENGTH = 16;
export const TRAILER_LENGTH = 2;
const OVERHEAD = TAG_LENGTH + IV_LENGTH + TRAILER_LENGTH;

/** Bytes left clear at the start of a frame whose media part is `mediaLength` bytes long. */
export function clearPrefixLength(kind, firstByte, mediaLength) {
  let nominal = 1; // Opus: the TOC byte
  if (kind === "video") nominal = (firstByte & 0x01) === 0 ? 10 : 3; // VP8 P bit 0: key frame
  return Math.min(nominal, mediaLength);
}

/** Encrypt one encoded frame (`data`, a Uint8Array) under `key` (AES-GCM CryptoKey). */
export async function encryptFrame(key, keyIndex, kind, data, iv = crypto.getRandomValues(new Uint8Array(IV_LENGTH))) {
  const clear = clearPrefixLength(kind, data[0], data.length);
  const header = data.subarray(0, clear);
  const sealed = new Uint8Array(await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: header, tagLength: TAG_LENGTH * 8 },
    key,
    data.subarray(clear),
  ));
  const out = new Uint8Array(clear + sealed.length + OVERHEAD - TAG_LENGTH);
  out.set(header, 0);
  out.set(sealed, clear);
  out.set(iv, clear + sealed.length);
  out[out.length - 2] = IV_LENGTH;
  out[out.length - 1] = keyIndex;
  return out;
}

/** The parts of an encrypted frame, or null when it cannot be one (too short, other IV length). */
export function parseFrame(kind, data) {
  if (data.length < OVERHEAD || data[data.length - 2] !== IV_LENGTH) return null;
  const mediaLength = data.length - OVERHEAD;
  const clear = clearPrefixLength(kind, data[0], mediaLength);
  const ivStart = data.length - TRAILER_LENGTH - IV_LENGTH;
  return {
    keyIndex: data[data.length - 1],
    header: data.subarray(0, clear),
    sealed: data.subarray(clear, ivStart),
    iv: data.subarray(ivStart, ivStart + IV_LENGTH),
  };
}

/** The plain frame of `parsed` (from parseFrame); throws when the key or any byte is wrong. */
export async function decryptFrame(key, parsed) {
  const plain = new Uint8Array(await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: parsed.iv, additionalData: parsed.header, tagLength: TAG_LENGTH * 8 },
    key,
    parsed.sealed,
  ));
  const out = new Uint8Array(parsed.header.length + plain.length);
  out.set(parsed.header, 0);
  out.set(plain, parsed.header.length);
  return out;
}
