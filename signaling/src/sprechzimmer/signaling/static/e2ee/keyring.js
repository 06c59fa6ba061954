// One sender's keys as a receiver holds them: key index → AES-GCM key, plus the material of the
// newest, to follow that sender's ratchet. A frame under an index a few steps past the newest
// (a join elsewhere ratcheted the sender's key) is tried with the ratcheted key; success keeps
// it. A frame under a brand-new key (someone left) fails until that key arrives wrapped.

import { frameKey, ratchet } from "./keys.js";

export const RATCHET_WINDOW = 8;
const RETRY_RATCHET_MS = 1000;
const KEEP = 4; // older indexes kept for frames still in flight

export class Keyring {
  constructor() {
    this.keys = new Map(); // index → CryptoKey
    this.newest = null; // {index, material}
    this.triedRatchet = new Map(); // index → time of the last failed attempt
  }

  async set(index, material) {
    this.keys.set(index, await frameKey(material));
    const ahead = this.newest ? (index - this.newest.index + 256) % 256 : 0;
    if (!this.newest || ahead < 128) this.newest = { index, material }; // not a replayed older one
    this.triedRatchet.clear();
    this.prune();
  }

  /** The key for `index`, ratcheting the newest forward if `index` is within reach. */
  async keyFor(index, tryFrame) {
    const known = this.keys.get(index);
    if (known || !this.newest) return known ?? null;
    const steps = (index - this.newest.index + 256) % 256;
    const last = this.triedRatchet.get(index) ?? -Infinity;
    if (steps === 0 || steps > RATCHET_WINDOW || performance.now() - last < RETRY_RATCHET_MS) return null;
    let material = this.newest.material;
    for (let i = 0; i < steps; i += 1) material = await ratchet(material);
    const key = await frameKey(material);
    if (!(await tryFrame(key))) {
      this.triedRatchet.set(index, performance.now());
      return null;
    }
    await this.set(index, material);
    return key;
  }

  prune() {
    const newest = this.newest.index;
    for (const index of this.keys.keys()) {
      if ((newest - index + 256) % 256 >= KEEP) this.keys.delete(index);
    }
  }
}
