// Who needs this page's sender key, and when it changes (docs/e2ee.md, "Key schedule"). Pure:
// no I/O and no crypto; session.js gathers the events, calls these, and carries out the result.
//
// - Someone who held the current key left: a brand-new random key (change "new"), sent to every
//   remaining person with a known public key; the leaver never gets it.
// - Someone joined: the key is ratcheted forward (change "ratchet"); those who have the current
//   key ratchet it themselves, only the newcomer is sent the ratcheted key. Earlier frames stay
//   out of the newcomer's reach.
// - A person's public key changed (their page reloaded): their old page held the key, so "new".
// The state is a plain object and is never mutated: every function returns a new one.

/**
 * @typedef {object} Policy
 * @property {number} epoch how many brand-new keys this page has made (the ratchet keeps it)
 * @property {Set<string>} members peer ids of the others in the call
 * @property {Map<string, string>} publicKeys peer id → their public key (hex)
 * @property {Map<string, number>} holders peer id → the epoch of the key last sent to them
 */

/** The state when this page joins a call whose other members are `members`. */
export function initialPolicy(members) {
  return { epoch: 0, members: new Set(members), publicKeys: new Map(), holders: new Map() };
}

/**
 * This page joined again after losing its connection: the others took it for gone and dropped
 * its key, so everyone who answers its announce is sent the key again.
 */
export function rejoined(policy) {
  return { ...policy, holders: new Map() };
}

/**
 * The call's members are now `ids` (from the roster).
 * @returns {{policy: Policy, change: "new"|"ratchet"|null, sendTo: string[], forget: string[]}}
 */
export function membersChanged(policy, ids) {
  const now = new Set(ids);
  const left = [...policy.members].filter((id) => !now.has(id));
  const joined = [...now].filter((id) => !policy.members.has(id));
  const leaverHeldKey = left.some((id) => policy.holders.has(id));
  const next = {
    ...policy,
    members: now,
    publicKeys: without(policy.publicKeys, left),
    holders: without(policy.holders, left),
  };
  if (leaverHeldKey) return { ...newKey(next), forget: left };
  return { ...settle(next, joined.length > 0 ? "ratchet" : null), forget: left };
}

/**
 * A valid `e2e` message from `peer` carried `publicKey` (hex). `announce`: they ask for keys
 * (a new page, or back after a reconnect).
 * @returns {{policy: Policy, change: "new"|"ratchet"|null, sendTo: string[]}}
 */
export function publicKeySeen(policy, peer, publicKey, { announce }) {
  const known = policy.publicKeys.get(peer);
  const joined = !policy.members.has(peer); // the roster has not caught up yet
  const next = {
    ...policy,
    members: new Set([...policy.members, peer]),
    publicKeys: new Map([...policy.publicKeys, [peer, publicKey]]),
  };
  if (known !== undefined && known !== publicKey && policy.holders.has(peer)) return newKey(next);
  const asking = announce ? without(next.holders, [peer]) : next.holders;
  return settle({ ...next, holders: asking }, joined ? "ratchet" : null);
}

/** The public keys (hex) of everyone in the call this page knows, its own included, sorted. */
export function callPublicKeys(policy, ownPublicKey) {
  const keys = [...policy.members].map((id) => policy.publicKeys.get(id)).filter(Boolean);
  return [...keys, ownPublicKey].sort();
}

function newKey(policy) {
  return settle({ ...policy, epoch: policy.epoch + 1, holders: new Map() }, "new");
}

/** Send the current key to every member with a public key who lacks this epoch's key. */
function settle(policy, change) {
  const sendTo = [...policy.members].filter(
    (id) => policy.publicKeys.has(id) && policy.holders.get(id) !== policy.epoch,
  );
  const holders = new Map([...policy.holders, ...sendTo.map((id) => [id, policy.epoch])]);
  return { policy: { ...policy, holders }, change, sendTo };
}

function without(map, ids) {
  const copy = new Map(map);
  for (const id of ids) copy.delete(id);
  return copy;
}
