// End-to-end encryption of a group call, the page's side (docs/e2ee.md): this page's X25519 key
// pair and sender key, the key exchange over `e2e` messages, and the frame worker. policy.js
// decides who gets which key and when it changes; this shell carries it out. One session lives
// as long as the page is in the call: a rejoin (new SfuLink) attaches the new connection's
// senders and receivers to the same worker and keys.

import { newKeyPair, newMaterial, open, pairwiseKey, publicKeyBytes, ratchet, seal } from "./keys.js";
import { E2eeMessageError, Kind, encodeAnnounce, encodeKey, keyAad, parsePayload } from "./messages.js";
import { callPublicKeys, initialPolicy, membersChanged, publicKeySeen, rejoined } from "./policy.js";
import { verificationCode } from "./verification.js";

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const bytes = (text) => Uint8Array.from(text.match(/../g), (h) => parseInt(h, 16));

/** Whether this browser can transform encoded frames (RTCRtpScriptTransform or the older API). */
export function e2eeSupported() {
  return "RTCRtpScriptTransform" in window || "createEncodedStreams" in RTCRtpSender.prototype;
}

export class E2eeSession {
  /**
   * @param {object} handlers
   * @param {(type: string, fields: object) => void} handlers.send signaling
   * @param {(slot: number, ok: boolean) => void} handlers.onDecrypting slot's video decrypts or not
   * @param {(code: string|null) => void} handlers.onCode the verification code changed
   * @param {(peer: string) => void} handlers.onRejected a key message from `peer` was rejected
   */
  constructor({ send, onDecrypting, onCode, onRejected }) {
    this.send = send;
    this.onCode = onCode;
    this.onRejected = onRejected;
    this.worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module", name: "e2ee" });
    this.worker.addEventListener("message", ({ data }) => {
      if (data.op === "decrypting") onDecrypting(data.slot, data.ok);
    });
    this.scriptTransform = "RTCRtpScriptTransform" in window;
    this.attached = new WeakSet();
    this.policy = null; // from the first join on
    this.members = [];
    this.pairwise = new Map(); // peer id → {publicKey (hex), key}
    this.code = null;
    this.own = { index: 0, material: newMaterial() };
    this.worker.postMessage({ op: "own-key", ...this.own });
    this.ready = newKeyPair().then(async (pair) => {
      this.pair = pair;
      this.publicKey = await publicKeyBytes(pair);
    });
  }

  /** What an RTCPeerConnection needs for the transforms (the older API must be asked for). */
  get peerConnectionConfig() {
    return this.scriptTransform ? {} : { encodedInsertableStreams: true };
  }

  /**
   * Put the frame transform on a sender or receiver, before the offer (Chromium ignores a
   * transform set on a sender mid-call). Repeating it for the same one does nothing.
   * @param {RTCRtpSender|RTCRtpReceiver} endpoint
   * @param {{side: "send"|"receive", kind: string, slot?: number}} options
   */
  attach(endpoint, options) {
    if (this.attached.has(endpoint)) return;
    this.attached.add(endpoint);
    if (this.scriptTransform) {
      endpoint.transform = new RTCRtpScriptTransform(this.worker, options);
      return;
    }
    const { readable, writable } = endpoint.createEncodedStreams();
    this.worker.postMessage({ op: "attach", options, readable, writable }, [readable, writable]);
  }

  /** This page joined (again): announce its public key; everyone answers with their key. */
  async joined() {
    await this.ready;
    this.policy = this.policy ? rejoined(this.policy) : initialPolicy(this.members);
    this.send("e2e", { to: "*", payload: encodeAnnounce(this.publicKey) });
    await this.showCode();
  }

  /** The others in the call (the roster's joined people). */
  async roster(ids) {
    this.members = ids;
    if (!this.policy) return;
    await this.apply(membersChanged(this.policy, ids));
  }

  /** `slots`: slot → peer id. */
  slots(slots) {
    this.worker.postMessage({ op: "slots", slots: [...slots] });
  }

  /** An `e2e` message. Anything malformed or that does not open is rejected and reported. */
  async message(from, payload) {
    await this.ready;
    if (!this.policy) return;
    let msg;
    try {
      msg = parsePayload(payload);
      if (msg.kind === Kind.KEY) {
        const key = await this.pairwiseKeyWith(from, msg.publicKey);
        const aad = keyAad(msg.publicKey, this.publicKey, msg.keyIndex);
        const material = await open(key, msg.iv, msg.sealed, aad).catch(() => {
          throw new E2eeMessageError("sealed key does not open");
        });
        this.worker.postMessage({ op: "peer-key", peer: from, index: msg.keyIndex, material });
      }
    } catch (error) {
      // No key material, no peer id: only that it happened and why.
      console.warn(`e2ee: key message rejected (${error instanceof E2eeMessageError ? error.message : error.name})`);
      this.onRejected(from);
      return;
    }
    await this.apply(publicKeySeen(this.policy, from, hex(msg.publicKey), { announce: msg.kind === Kind.ANNOUNCE }));
  }

  close() {
    this.worker.terminate();
  }

  // --- carrying out policy.js's decisions ------------------------------------------------------

  async apply({ policy, change, sendTo, forget = [] }) {
    this.policy = policy;
    if (forget.length > 0) {
      for (const peer of forget) this.pairwise.delete(peer);
      this.worker.postMessage({ op: "forget", peers: forget });
    }
    if (change) {
      const material = change === "new" ? newMaterial() : await ratchet(this.own.material);
      this.own = { index: (this.own.index + 1) % 256, material };
    }
    for (const peer of sendTo) await this.sendKey(peer);
    // The worker switches after the key is on its way: receivers get it before the frames.
    if (change) this.worker.postMessage({ op: "own-key", ...this.own });
    await this.showCode();
  }

  async sendKey(peer) {
    const theirs = bytes(this.policy.publicKeys.get(peer));
    const key = await this.pairwiseKeyWith(peer, theirs);
    const { index, material } = this.own;
    const { iv, sealed } = await seal(key, material, keyAad(this.publicKey, theirs, index));
    this.send("e2e", { to: peer, payload: encodeKey({ publicKey: this.publicKey, keyIndex: index, iv, sealed }) });
  }

  async pairwiseKeyWith(peer, theirPublic) {
    const known = this.pairwise.get(peer);
    if (known?.publicKey === hex(theirPublic)) return known.key;
    const key = await pairwiseKey(this.pair, this.publicKey, theirPublic).catch(() => {
      throw new E2eeMessageError("unusable public key");
    });
    this.pairwise.set(peer, { publicKey: hex(theirPublic), key });
    return key;
  }

  async showCode() {
    const keys = callPublicKeys(this.policy, hex(this.publicKey));
    const code = keys.length > 1 ? await verificationCode("group", keys) : null;
    if (code !== this.code) {
      this.code = code;
      this.onCode(code);
    }
  }
}
