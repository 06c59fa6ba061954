// The frame-encryption worker: every encoded frame of the group call passes through here.
// Outgoing frames are encrypted with this page's sender key; incoming frames of receive slot k
// are decrypted with the keys of the person the `slots` message puts in slot k. A frame that
// cannot be encrypted is dropped, never sent in the clear; one that cannot be decrypted is
// dropped too. Transforms arrive as RTCRtpScriptTransform (`rtctransform`) or, where that is
// missing, as streams from createEncodedStreams() (`attach`). Key material never leaves here
// except as frames' keys; nothing is logged.

import { decryptFrame, encryptFrame, parseFrame } from "./frame.js";
import { frameKey } from "./keys.js";
import { Keyring } from "./keyring.js";

const FAILING_AFTER_MS = 1000; // no frame of a slot decrypted for this long: not decrypting

let own = null; // {index, key}
const rings = new Map(); // peer id → Keyring
let slotPeers = new Map(); // slot → peer id
const senders = new Set(); // video send transformers (key frames on a key change)
const receivers = new Map(); // slot → newest receive-video entry {transformer, ok, lastOk}

async function encrypt(frame, kind, controller) {
  if (frame.data.byteLength === 0) return controller.enqueue(frame);
  if (!own) return undefined; // no key yet: drop, never send in the clear
  frame.data = (await encryptFrame(own.key, own.index, kind, new Uint8Array(frame.data))).buffer;
  return controller.enqueue(frame);
}

async function decrypt(frame, kind, slot, entry, controller) {
  if (frame.data.byteLength === 0) return controller.enqueue(frame);
  const parsed = parseFrame(kind, new Uint8Array(frame.data));
  const ring = rings.get(slotPeers.get(slot));
  let plain = null;
  if (parsed && ring) {
    const attempt = async (key) => {
      try {
        plain = await decryptFrame(key, parsed);
        return true;
      } catch {
        return false;
      }
    };
    const key = await ring.keyFor(parsed.keyIndex, attempt);
    if (key && !plain) await attempt(key);
  }
  if (entry) report(slot, entry, plain !== null);
  if (!plain) return undefined;
  frame.data = plain.buffer;
  return controller.enqueue(frame);
}

/** Tell the page when slot `slot`'s video starts or stops being decrypted. */
function report(slot, entry, ok) {
  const now = performance.now();
  if (ok) entry.lastOk = now;
  const decrypting = ok || now - entry.lastOk < FAILING_AFTER_MS;
  if (decrypting !== entry.ok && receivers.get(slot) === entry) {
    entry.ok = decrypting;
    postMessage({ op: "decrypting", slot, ok: decrypting });
  }
}

function run({ side, kind, slot }, readable, writable, transformer) {
  let entry = null;
  if (side === "receive" && kind === "video") {
    entry = { transformer, ok: false, lastOk: -Infinity, slot };
    receivers.set(slot, entry); // a rejoin's new connection replaces the old one's
  }
  if (side === "send" && kind === "video" && transformer) senders.add(transformer);
  const transform = side === "send"
    ? (frame, controller) => encrypt(frame, kind, controller)
    : (frame, controller) => decrypt(frame, kind, slot, entry, controller);
  readable
    .pipeThrough(new TransformStream({ transform }))
    .pipeTo(writable)
    .catch(() => {}) // the connection closed (leave, rejoin)
    .finally(() => {
      senders.delete(transformer);
      if (entry && receivers.get(slot) === entry) receivers.delete(slot);
    });
}

/** Ask the senders of slots whose person has a new key for a key frame (script transform). */
function requestKeyFrames(peer) {
  for (const [slot, entry] of receivers) {
    if (slotPeers.get(slot) === peer && !entry.ok) quietly(() => entry.transformer?.sendKeyFrameRequest?.());
  }
}

/** A key-frame request is a hint: where the browser refuses it (throws or rejects), go on. */
function quietly(request) {
  try {
    request()?.catch(() => {});
  } catch {
    // not offered for this transform (audio, or the older API)
  }
}

const handlers = {
  async "own-key"({ index, material }) {
    own = { index, key: await frameKey(material) };
    for (const transformer of senders) quietly(() => transformer.generateKeyFrame?.());
  },
  async "peer-key"({ peer, index, material }) {
    if (!rings.has(peer)) rings.set(peer, new Keyring());
    await rings.get(peer).set(index, material);
    requestKeyFrames(peer);
  },
  forget({ peers }) {
    for (const peer of peers) rings.delete(peer);
  },
  slots({ slots }) {
    const before = slotPeers;
    slotPeers = new Map(slots);
    for (const [slot, entry] of receivers) {
      if (before.get(slot) !== slotPeers.get(slot) && entry.ok) {
        entry.ok = false; // someone else now: decrypting again only once their frames do
        entry.lastOk = -Infinity;
        postMessage({ op: "decrypting", slot, ok: false });
      }
    }
  },
  attach({ options, readable, writable }) {
    run(options, readable, writable, null);
  },
};

// Key messages must apply in order (a new key before the frames that need it).
let queue = Promise.resolve();
self.addEventListener("message", ({ data }) => {
  queue = queue.then(() => handlers[data.op]?.(data)).catch(() => {});
});

self.addEventListener("rtctransform", ({ transformer }) => {
  run(transformer.options, transformer.readable, transformer.writable, transformer);
});
