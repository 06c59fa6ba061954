// The key schedule (docs/e2ee.md), WebCrypto only (browser and Node):
// - a sender key is 32 random bytes of material; frames are encrypted with
//   AES-256-GCM key = HKDF-SHA-256(material, info "sprechzimmer e2ee v1 frame");
// - the ratchet (someone joined): material' = HKDF-SHA-256(material, info "… ratchet");
// - pairwise wrap key with another page: X25519 ECDH → HKDF-SHA-256(secret, salt = both public
//   keys sorted, info "… wrap") → AES-256-GCM, used to seal sender keys for that page only.
// Nothing here is derived from an access code.

const encoder = new TextEncoder();
export const MATERIAL_BYTES = 32;
export const PUBLIC_KEY_BYTES = 32;
const INFO = {
  frame: encoder.encode("sprechzimmer e2ee v1 frame"),
  ratchet: encoder.encode("sprechzimmer e2ee v1 ratchet"),
  wrap: encoder.encode("sprechzimmer e2ee v1 wrap"),
};

export function newMaterial() {
  return crypto.getRandomValues(new Uint8Array(MATERIAL_BYTES));
}

async function hkdf(ikm, info, salt = new Uint8Array(0)) {
  const base = await crypto.subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits"]);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, base, 256));
}

function aesKey(bytes, usages) {
  return crypto.subtle.importKey("raw", bytes, { name: "AES-GCM" }, false, usages);
}

/** The next sender key material after a join (one way: the new key does not give the old). */
export function ratchet(material) {
  return hkdf(material, INFO.ratchet);
}

/** The AES-GCM key frames are encrypted with, from sender key material. */
export async function frameKey(material) {
  return aesKey(await hkdf(material, INFO.frame), ["encrypt", "decrypt"]);
}

/** This page's X25519 key pair; the private key cannot be exported. */
export function newKeyPair() {
  return crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
}

export async function publicKeyBytes(pair) {
  return new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
}

/** Bytewise order of two byte strings of the same length. */
export function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i += 1) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

/** The pairwise AES-GCM key between this page (`pair`, `ownPublic`) and `theirPublic`. */
export async function pairwiseKey(pair, ownPublic, theirPublic) {
  const their = await crypto.subtle.importKey("raw", theirPublic, { name: "X25519" }, false, []);
  // Throws for a small-order (all-zero secret) public key: such a message is rejected.
  const secret = new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: their }, pair.privateKey, 256));
  const [first, second] = [ownPublic, theirPublic].sort(compareBytes);
  const salt = new Uint8Array(PUBLIC_KEY_BYTES * 2);
  salt.set(first, 0);
  salt.set(second, PUBLIC_KEY_BYTES);
  return aesKey(await hkdf(secret, INFO.wrap, salt), ["encrypt", "decrypt"]);
}

/** Seal sender key material for one page; `aad` binds sender, recipient and key index. */
export async function seal(key, material, aad, iv = crypto.getRandomValues(new Uint8Array(12))) {
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, key, material));
  return { iv, sealed };
}

/** The material sealed by `seal`; throws when anything was changed or the key is not theirs. */
export async function open(key, iv, sealed, aad) {
  return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad }, key, sealed));
}
