// Unit tests of the browser client's end-to-end encryption modules (static/e2ee/), in Node's
// WebCrypto (the same API as the browser's). Run by test_e2ee_modules.py through `node --test`.

import assert from "node:assert/strict";
import { test } from "node:test";

const E2EE = "../../src/sprechzimmer/signaling/static/e2ee";
const frame = await import(`${E2EE}/frame.js`);
const keys = await import(`${E2EE}/keys.js`);
const messages = await import(`${E2EE}/messages.js`);
const policy = await import(`${E2EE}/policy.js`);
const verification = await import(`${E2EE}/verification.js`);
const { Keyring, RATCHET_WINDOW } = await import(`${E2EE}/keyring.js`);

const bytes = (...values) => Uint8Array.from(values);
const random = (n) => crypto.getRandomValues(new Uint8Array(n));
const hex = (b) => Buffer.from(b).toString("hex");

// --- frame format -------------------------------------------------------------------------------

test("frames keep exactly the clear prefix: 10 bytes of a VP8 key frame, 3 of a delta, 1 of Opus", async () => {
  const key = await keys.frameKey(keys.newMaterial());
  const cases = [
    ["video", bytes(0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, ...random(300)), 10],
    ["video", bytes(0x31, 0x07, 0x00, ...random(200)), 3],
    ["audio", bytes(0x78, ...random(60)), 1],
    ["video", bytes(0x31, 0x07), 2], // shorter than its prefix: all clear, still authenticated
  ];
  for (const [kind, plain, clear] of cases) {
    const sealed = await frame.encryptFrame(key, 7, kind, plain);
    assert.equal(sealed.length, plain.length + 16 + 12 + 2);
    assert.deepEqual(sealed.subarray(0, clear), plain.subarray(0, clear));
    if (clear < plain.length) assert.notDeepEqual(sealed.subarray(clear, plain.length), plain.subarray(clear));
    assert.equal(sealed[sealed.length - 2], 12); // IV length
    assert.equal(sealed[sealed.length - 1], 7); // key index
    const parsed = frame.parseFrame(kind, sealed);
    assert.equal(parsed.header.length, clear);
    assert.deepEqual(await frame.decryptFrame(key, parsed), plain);
  }
});

test("the SFU's key-frame bit stays readable: bit 0 of the first byte", async () => {
  const key = await keys.frameKey(keys.newMaterial());
  const keyFrame = await frame.encryptFrame(key, 0, "video", bytes(0x50, ...random(40)));
  const delta = await frame.encryptFrame(key, 0, "video", bytes(0x51, ...random(40)));
  assert.equal(keyFrame[0] & 0x01, 0);
  assert.equal(delta[0] & 0x01, 1);
});

test("a frame with a changed clear byte, a changed ciphertext byte or another key is refused", async () => {
  const key = await keys.frameKey(keys.newMaterial());
  const other = await keys.frameKey(keys.newMaterial());
  const sealed = await frame.encryptFrame(key, 1, "video", bytes(0x31, 0x07, 0x00, ...random(100)));
  for (const at of [1, 20]) {
    const changed = sealed.slice();
    changed[at] ^= 0x01;
    await assert.rejects(frame.decryptFrame(key, frame.parseFrame("video", changed)));
  }
  await assert.rejects(frame.decryptFrame(other, frame.parseFrame("video", sealed)));
});

test("what cannot be an encrypted frame is not parsed", () => {
  assert.equal(frame.parseFrame("video", random(29)), null);
  const wrongIvLength = new Uint8Array(60);
  wrongIvLength[58] = 16;
  assert.equal(frame.parseFrame("video", wrongIvLength), null);
});

// --- e2e messages -------------------------------------------------------------------------------

test("announce and key messages round-trip", () => {
  const publicKey = random(32);
  assert.deepEqual(messages.parsePayload(messages.encodeAnnounce(publicKey)), { kind: 1, publicKey });
  const key = { publicKey, keyIndex: 200, iv: random(12), sealed: random(48) };
  const payload = messages.encodeKey(key);
  assert.match(payload, /^[A-Za-z0-9_-]+$/);
  assert.deepEqual(messages.parsePayload(payload), { kind: 2, ...key });
});

test("payloads are validated strictly: version, type, exact length, encoding, size", () => {
  const announce = Uint8Array.of(1, 1, ...random(32));
  const bad = [
    Uint8Array.of(2, 1, ...random(32)), // version
    Uint8Array.of(1, 3, ...random(32)), // type
    Uint8Array.of(1, 1, ...random(31)), // length
    Uint8Array.of(1, 1, ...random(33)),
    Uint8Array.of(1, 2, ...random(32 + 1 + 12 + 47)),
    Uint8Array.of(1),
  ].map(messages.toBase64url);
  bad.push(`${messages.toBase64url(announce)}=`, "a+b/", "A".repeat(16385), "", 42);
  for (const payload of bad) {
    assert.throws(() => messages.parsePayload(payload), messages.E2eeMessageError, String(payload).slice(0, 40));
  }
});

// --- key schedule -------------------------------------------------------------------------------

async function page() {
  const pair = await keys.newKeyPair();
  return { pair, publicKey: await keys.publicKeyBytes(pair) };
}

test("the pairwise key is the same both ways; a sealed key opens only for its recipient", async () => {
  const [a, b, c] = [await page(), await page(), await page()];
  const ab = await keys.pairwiseKey(a.pair, a.publicKey, b.publicKey);
  const ba = await keys.pairwiseKey(b.pair, b.publicKey, a.publicKey);
  const cb = await keys.pairwiseKey(c.pair, c.publicKey, b.publicKey);
  const material = keys.newMaterial();
  const aad = messages.keyAad(a.publicKey, b.publicKey, 3);
  const { iv, sealed } = await keys.seal(ab, material, aad);
  assert.deepEqual(await keys.open(ba, iv, sealed, aad), material);
  await assert.rejects(keys.open(cb, iv, sealed, aad)); // someone else
  await assert.rejects(keys.open(ba, iv, sealed, messages.keyAad(a.publicKey, b.publicKey, 4)));
  await assert.rejects(keys.open(ba, iv, sealed, messages.keyAad(b.publicKey, a.publicKey, 3))); // reflected
  const flipped = sealed.slice();
  flipped[5] ^= 0x80;
  await assert.rejects(keys.open(ba, iv, flipped, aad));
});

test("a small-order public key is refused", async () => {
  const a = await page();
  await assert.rejects(keys.pairwiseKey(a.pair, a.publicKey, new Uint8Array(32)));
});

test("the ratchet is deterministic and one way from the receiver's point of view", async () => {
  const material = keys.newMaterial();
  const next = await keys.ratchet(material);
  assert.deepEqual(await keys.ratchet(material), next);
  assert.notDeepEqual(next, material);
  assert.equal(next.length, 32);
});

test("a receiver follows a sender's ratchet within the window, not a brand-new key", async () => {
  const material = keys.newMaterial();
  const ring = new Keyring();
  await ring.set(10, material);
  let ratcheted = material;
  for (let i = 0; i < 2; i += 1) ratcheted = await keys.ratchet(ratcheted);
  const sealed = await frame.encryptFrame(await keys.frameKey(ratcheted), 12, "audio", random(40));
  const parsed = frame.parseFrame("audio", sealed);
  const tryFrame = (key) => frame.decryptFrame(key, parsed).then(() => true, () => false);
  assert.ok(await ring.keyFor(12, tryFrame));
  assert.ok(ring.keys.has(12));

  const fresh = await frame.encryptFrame(await keys.frameKey(keys.newMaterial()), 13, "audio", random(40));
  const freshParsed = frame.parseFrame("audio", fresh);
  assert.equal(await ring.keyFor(13, (key) => frame.decryptFrame(key, freshParsed).then(() => true, () => false)), null);
  assert.equal(await ring.keyFor(12 + RATCHET_WINDOW + 1, async () => true), null); // out of reach
});

// --- who gets which key -------------------------------------------------------------------------

test("policy: joins ratchet, leavers who held the key force a new one, keys go only to members", () => {
  let state = policy.initialPolicy(["b"]);
  let step = policy.publicKeySeen(state, "b", "bb", { announce: true });
  assert.deepEqual([step.change, step.sendTo], [null, ["b"]]);
  state = step.policy;

  step = policy.membersChanged(state, ["b", "c"]); // c joins: ratchet; nobody has c's key yet
  assert.deepEqual([step.change, step.sendTo, step.forget], ["ratchet", [], []]);
  state = step.policy;
  step = policy.publicKeySeen(state, "c", "cc", { announce: true }); // c asks: the ratcheted key
  assert.deepEqual([step.change, step.sendTo], [null, ["c"]]);
  state = step.policy;

  step = policy.publicKeySeen(state, "b", "bb", { announce: false }); // b's key message: has it
  assert.deepEqual([step.change, step.sendTo], [null, []]);

  step = policy.membersChanged(state, ["c"]); // b left holding the key: brand-new key for c only
  assert.deepEqual([step.change, step.sendTo, step.forget], ["new", ["c"], ["b"]]);
  assert.equal(step.policy.epoch, state.epoch + 1);
  assert.ok(!step.policy.publicKeys.has("b"));
});

test("policy: a leaver who never had the key changes nothing; a new page of someone does", () => {
  let state = policy.publicKeySeen(policy.initialPolicy(["b", "x"]), "b", "bb", { announce: true }).policy;
  let step = policy.membersChanged(state, ["b"]); // x never announced, never got a key
  assert.deepEqual([step.change, step.sendTo], [null, []]);
  state = step.policy;
  step = policy.publicKeySeen(state, "b", "b2", { announce: true }); // b reloaded: new key pair
  assert.deepEqual([step.change, step.sendTo], ["new", ["b"]]);
});

test("policy: an announce that overtakes the roster counts as a join", () => {
  const state = policy.publicKeySeen(policy.initialPolicy([]), "b", "bb", { announce: true }).policy;
  const step = policy.publicKeySeen(state, "c", "cc", { announce: true });
  assert.deepEqual([step.change, step.sendTo], ["ratchet", ["c"]]);
  assert.deepEqual(policy.callPublicKeys(step.policy, "aa"), ["aa", "bb", "cc"]);
});

test("policy: after this page's own reconnect, everyone who answers gets its key again", () => {
  const state = policy.publicKeySeen(policy.initialPolicy(["b"]), "b", "bb", { announce: true }).policy;
  assert.deepEqual(policy.publicKeySeen(state, "b", "bb", { announce: false }).sendTo, []);
  const step = policy.publicKeySeen(policy.rejoined(state), "b", "bb", { announce: false });
  assert.deepEqual([step.change, step.sendTo], [null, ["b"]]);
});

// --- verification code --------------------------------------------------------------------------

test("the verification code is the same whatever the order, and changes with any key", async () => {
  const [a, b, c] = [hex(random(32)), hex(random(32)), hex(random(32))];
  const code = await verification.verificationCode("group", [a, b, c]);
  assert.match(code, /^\d{3} \d{3} \d{3} \d{3}$/);
  assert.equal(await verification.verificationCode("group", [c, a, b]), code);
  assert.notEqual(await verification.verificationCode("group", [a, b, hex(random(32))]), code);
  assert.notEqual(await verification.verificationCode("p2p", [a, b, c]), code);
});

test("1:1: both ends get the same code from their own and the other's SDP", async () => {
  const sdp = (print) => `v=0\r\na=group:BUNDLE 0\r\na=fingerprint:sha-256 ${print}\r\n`;
  const x = "AB:CD:01";
  const y = "12:34:EF";
  const one = await verification.p2pCode(sdp(x), sdp(y));
  assert.equal(await verification.p2pCode(sdp(y.toLowerCase()), sdp(x)), one);
  assert.match(one, /^\d{3} \d{3} \d{3} \d{3}$/);
  assert.equal(await verification.p2pCode(sdp(x), "v=0\r\n"), null);
});

test("the code uses 64 bits of the digest as 12 digits", () => {
  assert.equal(verification.formatCode(new Uint8Array(32)), "000 000 000 000");
  assert.equal(verification.formatCode(Uint8Array.of(0, 0, 0, 0, 0, 0, 0x03, 0xe8)), "000 000 001 000");
});
