// The call page: admission over the WebSocket, consent, then a 1:1 call (PeerLink per other
// person) or a group call (one SfuLink to the media pod). Facts are gathered here; state.js's
// callState() decides which state the page is in; setState() applies it to main[data-state].

import {
  forgetCall, linkToken, loadAuth, loadResume, storeAuth, storeResume, storeStartError,
} from "./credentials.js";
import { lang, localPath, t } from "./i18n.js";
import { attachControls } from "./controls.js";
import { showLogo } from "./logo.js";
import { openLocalMedia, setTracksEnabled, stopMedia } from "./media.js";
import { E2eeSession, e2eeSupported } from "./e2ee/session.js";
import { p2pCode } from "./e2ee/verification.js";
import * as e2eeView from "./e2ee/view.js";
import { SfuLink } from "./group.js";
import { Monitor } from "./monitor.js";
import { PeerLink } from "./peer.js";
import { Action, RETRY_MS, socketRetryDelay } from "./reconnect.js";
import { Signaling } from "./signaling.js";
import { State, callState } from "./state.js";
import * as ui from "./ui.js";

const NOT_STARTED_RECHECK_MS = 60000;
// Wrong input on the start page: go back there and show the error beside what was typed.
const START_PAGE_ERRORS = new Set(["unknown-code", "rate-limited"]);
// Close codes from the protocol, for a close that arrives without its `error`/`ended` message.
const CLOSE_ERRORS = {
  1009: "bad-message", 4400: "bad-message", 4401: "unknown-code", 4409: "full", 4410: "expired",
  4429: "rate-limited", 4503: "unavailable",
};
// 1:1: the later joiner offers. If two join at the same moment, neither may see the other as
// earlier; then the one with the larger peer id offers after this long, unless an offer came
// (offers that still cross are resolved by PeerLink's perfect negotiation). Both offering at
// once was tried: the polite side's rollback in Chromium 156 then sometimes never gathered a
// TURN candidate again (allocate timed out), leaving the call in `connecting`.
const OFFER_FALLBACK_MS = 3000;
// A person's socket dropping takes them off the roster (as leaving does); their media may still
// flow. Their picture goes at once, but a working link is kept this long for a resume.
const GONE_GRACE_MS = 10000;

const call = {
  auth: null,
  final: null, // State.ENDED or State.ERROR: nothing more happens on this page
  admitted: false, // `welcome` on the current socket
  wasAdmitted: false,
  decided: false, // the server sent `error`/`ended`; the following close is expected
  welcome: null,
  rosterSinceWelcome: false, // `welcome` is followed by a `roster`: join only once it is here
  consented: false,
  name: "",
  joined: false,
  notStarted: false,
  scheduledStart: null,
  stream: null,
  roster: [],
  offerTo: new Set(), // 1:1: peers this page offers to (those joined before it)
  offerWaits: new Map(), // 1:1: peer id → fallback timer while waiting for their offer
  links: new Map(), // peer id → PeerLink (1:1)
  sfu: null, // SfuLink (group)
  e2ee: null, // E2eeSession (group): keys and frame encryption, kept across rejoins
  slots: new Map(), // slot → peer id (group)
  retryTimer: null,
  socketAttempts: 0, // new sockets tried since the last `welcome` (reconnect.js)
  sfuPeer: null, // the peer id the SfuLink was offered under (a new seat needs a new link)
  // SfuLinks whose offers this socket sent, oldest first: signaling answers a socket's offers in
  // order, so each answer belongs to the first; one for a link replaced meanwhile is dropped.
  sfuOffers: [],
};

let state = null;

function setState(next) {
  if (next !== state) {
    console.info(`call: ${state} -> ${next}`);
    state = next;
  }
  ui.showState(next);
  ui.showStatus(statusText(next));
}

/** Recompute the state from the facts (the only place that calls setState). */
function update() {
  const links = call.sfu ? [call.sfu.connectionState] : [...call.links.values()].map((l) => l.connectionState);
  setState(callState({
    final: call.final,
    admitted: call.admitted,
    wasAdmitted: call.wasAdmitted,
    consented: call.consented,
    notStarted: call.notStarted,
    links,
    others: call.roster.length,
    mediaDown: monitor.anyDown(),
  }));
}

function statusText(current) {
  switch (current) {
    case State.WAITING:
      return ui.waitingText(call.notStarted ? call.scheduledStart : null);
    case State.CONNECTING:
      return call.roster.length ? t("connecting.media", { name: ui.personName(call.roster[0]) }) : t("state.connecting");
    case State.RECONNECTING:
      return t("reconnecting.status");
    case State.CONNECTED:
      return t("connected.status");
    default:
      return "";
  }
}

const isGroup = () => call.welcome?.mode === "MediaPod";
const peer = (id) => call.roster.find((p) => p.id === id);
const send = (type, fields) => signaling.send(type, fields);

function rtcConfig() {
  return {
    iceServers: call.welcome.iceServers ?? [],
    iceTransportPolicy: call.welcome.iceTransportPolicy === "relay" ? "relay" : "all",
  };
}

// --- signaling ---------------------------------------------------------------------------------

// Messages are handled one after the other, even where handling waits (WebRTC calls), so a
// candidate never overtakes its description and a roster never overtakes its welcome.
let handling = Promise.resolve();
const signaling = new Signaling({
  onMessage: (msg) => {
    handling = handling.then(() => handle(msg)).catch((error) => console.warn("message", error));
  },
  onClose,
});

function connect() {
  clearTimeout(call.retryTimer);
  call.admitted = false;
  const hello = { auth: call.auth, lang };
  const resume = loadResume();
  if (resume) hello.resume = resume;
  signaling.open(hello);
}

function retryIn(ms) {
  clearTimeout(call.retryTimer);
  call.retryTimer = setTimeout(connect, ms);
}

async function handle(msg) {
  switch (msg.type) {
    case "welcome":
      call.admitted = true;
      call.socketAttempts = 0;
      call.sfuOffers = []; // offers of an earlier socket are never answered
      call.wasAdmitted = true;
      call.welcome = msg;
      storeResume(msg.resume);
      call.notStarted = msg.state === "waiting";
      call.scheduledStart = msg.scheduledStart ?? null;
      call.rosterSinceWelcome = false;
      if (msg.logo) showLogo(msg.logo);
      ui.showConsent({ autostart: msg.role === "host" && "link" in call.auth, group: isGroup() });
      break;
    case "open":
      call.notStarted = false;
      if (msg.iceServers) {
        call.welcome.iceServers = msg.iceServers; // group: the media pod's TURN, now known
        call.welcome.iceTransportPolicy = msg.iceTransportPolicy;
      }
      if (call.consented) await join();
      break;
    case "roster":
      call.roster = (msg.peers ?? []).filter((p) => p.joined);
      if (!call.rosterSinceWelcome) {
        call.rosterSinceWelcome = true;
        if (call.consented && !call.notStarted) await join(); // back after a reconnect
      }
      if (isGroup()) {
        await call.e2ee?.roster(call.roster.map((p) => p.id));
        showSlots();
      } else await syncLinks();
      break;
    case "sdp":
      await acceptDescription(msg.from, msg.description);
      break;
    case "ice":
      if (msg.from !== "sfu") await call.links.get(msg.from)?.acceptCandidate(msg.candidate);
      break;
    case "slots":
      call.slots = new Map((msg.slots ?? []).map((s) => [s.slot, s.peer]));
      call.e2ee?.slots(call.slots);
      showSlots();
      break;
    case "speaker":
      ui.markSpeaker(msg.peer ? tileKeyOf(msg.peer) : null);
      break;
    case "error":
      onError(msg);
      break;
    case "ended":
      onEnded(msg.reason);
      break;
    case "e2e":
      await call.e2ee?.message(msg.from, msg.payload);
      break;
    default:
      break; // newer types: not used by this version of the page
  }
  update();
}

function onClose(code) {
  call.admitted = false;
  call.joined = false;
  if (call.decided) {
    call.decided = false;
  } else if (!call.final) {
    const error = CLOSE_ERRORS[code];
    if (error) onError({ code: error });
    else retryIn(socketRetryDelay(call.socketAttempts++)); // 1001, 1006, CLOSE_LOST (no pong), …
  }
  update();
}

function onError({ code, retryAfter, scheduledStart }) {
  call.decided = true;
  if (code === "not-started") {
    call.notStarted = true;
    call.scheduledStart = scheduledStart ?? call.scheduledStart;
    const untilStart = call.scheduledStart ? new Date(call.scheduledStart) - Date.now() : 0;
    retryIn(Math.min(Math.max(untilStart, RETRY_MS), NOT_STARTED_RECHECK_MS));
    return;
  }
  if (code === "unavailable") {
    retryIn(RETRY_MS);
    return;
  }
  if ("host" in call.auth && START_PAGE_ERRORS.has(code)) {
    storeStartError({ error: code, retryAfter, host: call.auth.host, code: call.auth.code });
    forgetCall();
    location.replace(localPath("/"));
    return;
  }
  if (code === "expired" || code === "cancelled") forgetCall();
  finish(State.ERROR);
  const shown = code === "unknown-code" && "link" in call.auth ? "unknown-link" : code;
  ui.showError(shown, { retryAfter, scheduledStart, retry: code === "rate-limited" || code === "full" });
}

function onEnded(reason) {
  call.decided = true;
  if (reason === "expired" || reason === "cancelled") forgetCall();
  finish(State.ENDED);
  ui.showEnded(reason, { rejoin: reason === "replaced" || reason === "left" });
}

/** The call is over for this page: stop media and connections, keep what is on screen. */
function finish(final) {
  call.final = final;
  clearTimeout(call.retryTimer);
  for (const timer of call.offerWaits.values()) clearTimeout(timer);
  call.offerWaits.clear();
  monitor.stop();
  for (const id of [...call.links.keys()]) dropLink(id);
  call.sfu?.close();
  call.sfu = null;
  call.e2ee?.close();
  call.e2ee = null;
  e2eeView.reset();
  stopMedia(call.stream);
  ui.removeAllRemotes();
}

// --- joining and media -------------------------------------------------------------------------

async function join() {
  if (call.joined || !call.admitted || !call.rosterSinceWelcome) return;
  if (isGroup() && !e2eeSupported()) {
    signaling.close();
    finish(State.ERROR);
    ui.showError("e2ee-unsupported");
    return;
  }
  call.joined = true;
  call.offerTo = new Set(call.roster.map((p) => p.id)); // here before this page: it offers
  send("join", call.name ? { name: call.name } : {});
  if (!isGroup()) await syncLinks();
  // Group: a new connection unless the current one is alive on this very seat (a resumed
  // socket keeps its place at the SFU; a new seat has a new peer id there).
  // An offer of an earlier socket that was never answered will not be.
  const stale = !call.sfu || call.sfuPeer !== call.welcome.you || !call.sfu.pc.remoteDescription ||
    ["failed", "closed"].includes(call.sfu.connectionState);
  if (isGroup()) await startE2ee();
  if (isGroup() && stale) await connectSfu();
}

/** Group: the page's end-to-end encryption (made once), told that this page (re)joined. */
async function startE2ee() {
  call.e2ee ??= new E2eeSession({
    send,
    onDecrypting: (slot, ok) => e2eeView.setDecrypting(`slot-${slot}`, ok),
    onCode: e2eeView.showCode,
    onRejected: (peerId) => e2eeView.showRejected(ui.personName(peer(peerId))),
  });
  await call.e2ee.roster(call.roster.map((p) => p.id));
  await call.e2ee.joined();
}

/** Group: a (new) connection to the SFU on this seat; the SFU replaces an older one of it. */
async function connectSfu() {
  call.sfu?.close();
  call.sfuPeer = call.welcome.you;
  call.sfu = new SfuLink({
    config: rtcConfig(),
    stream: call.stream,
    slots: Math.max((call.welcome.maxParticipants ?? 2) - 1, 1),
    send,
    onChange: update,
    frames: call.e2ee,
  });
  showSlots();
  call.sfuOffers.push(call.sfu);
  await call.sfu.offer();
}

// --- staying connected (reconnect.js decides, monitor.js watches) ------------------------------

/** The links monitor.js watches, described afresh on each of its ticks. */
function watchedLinks() {
  if (call.sfu) {
    const tiles = [...call.slots].filter(([, id]) => id).map(([slot]) => ({
      tile: `slot-${slot}`, mids: call.sfu.slotMids(slot),
    }));
    return [{
      key: "sfu", pc: call.sfu.pc, drives: true, resumable: false, expecting: tiles.length > 0, tiles,
    }];
  }
  return [...call.links].filter(([id]) => peer(id)).map(([id, link]) => ({
    key: id,
    pc: link.pc,
    drives: !link.polite, // one side repairs, so both never start over at once
    resumable: true,
    expecting: true,
    tiles: [{ tile: id, mids: link.receivingMids }],
  }));
}

function repair(key, action) {
  if (key === "sfu") {
    void connectSfu().then(update).catch((error) => console.warn("sfu rejoin", error.name));
  } else if (action === Action.RESUME) {
    call.links.get(key)?.restartIce();
  } else if (call.links.has(key)) {
    dropLink(key); // the other side sees a new DTLS fingerprint and answers on a new link too
    void newLink(key).offer().then(update).catch((error) => console.warn("rejoin", error.name));
  }
}

const monitor = new Monitor({
  links: watchedLinks,
  canSignal: () => call.admitted && call.joined,
  repair,
  onChange: update,
});

function newLink(peerId) {
  const link = new PeerLink({
    peerId,
    polite: call.welcome.you < peerId,
    config: rtcConfig(),
    stream: call.stream,
    send,
    onStream: (stream) => {
      if (peer(peerId)) ui.showRemote(peerId, stream, ui.personName(peer(peerId)));
      e2eeView.markTiles();
    },
    onChange: () => {
      // Off the roster and the media stopped too: they left (or are gone for long).
      if (!peer(peerId) && link.connectionState !== "connected") dropLink(peerId);
      showP2pVerification(peerId, link);
      update();
    },
  });
  call.links.set(peerId, link);
  return link;
}

/** 1:1: DTLS-SRTP runs browser to browser; the code over both fingerprints shows it is theirs. */
function showP2pVerification(peerId, link) {
  const connected = link.connectionState === "connected";
  e2eeView.setDecrypting(peerId, connected);
  if (!connected) {
    e2eeView.showCode(null); // a code shows only while the connection it belongs to is up
    return;
  }
  void p2pCode(link.pc.localDescription?.sdp, link.pc.remoteDescription?.sdp).then((code) => {
    if (call.links.get(peerId) === link) e2eeView.showCode(code);
  });
}

function dropLink(peerId) {
  clearTimeout(call.links.get(peerId)?.goneTimer);
  call.links.get(peerId)?.close();
  call.links.delete(peerId);
  ui.removeRemote(peerId);
  e2eeView.setDecrypting(peerId, false);
  if (call.links.size === 0) e2eeView.showCode(null);
}

/** 1:1: take down links of people who left; offer to those who were there before this page. */
async function syncLinks() {
  const present = new Set(call.roster.map((p) => p.id));
  for (const [id, link] of call.links) {
    if (present.has(id)) {
      clearTimeout(link.goneTimer);
      link.goneTimer = null;
      if (link.stream) ui.showRemote(id, link.stream, ui.personName(peer(id)));
    } else if (!link.goneTimer) {
      ui.removeRemote(id); // their picture goes at once; the connection waits for a resume
      const grace = link.connectionState === "connected" ? GONE_GRACE_MS : 0;
      link.goneTimer = setTimeout(() => { dropLink(id); update(); }, grace);
    }
  }
  if (!call.joined) return;
  for (const other of call.roster) {
    const link = call.links.get(other.id);
    if (link && !["failed", "closed"].includes(link.connectionState)) continue;
    if (call.offerTo.has(other.id)) {
      if (link) dropLink(other.id);
      await newLink(other.id).offer();
    } else if (call.welcome.you > other.id && !call.offerWaits.has(other.id)) {
      call.offerWaits.set(other.id, setTimeout(() => {
        call.offerWaits.delete(other.id);
        call.offerTo.add(other.id);
        void syncLinks().then(update);
      }, OFFER_FALLBACK_MS));
    }
  }
}

async function acceptDescription(from, description) {
  if (from === "sfu") {
    const offeredBy = call.sfuOffers.shift();
    if (offeredBy === call.sfu) await call.sfu.acceptDescription(description);
    return;
  }
  if (!call.consented || !call.stream) return;
  clearTimeout(call.offerWaits.get(from));
  call.offerWaits.delete(from);
  let link = call.links.get(from);
  if (link?.startedOver(description)) {
    dropLink(from); // a new connection of theirs (reload, new device): so do we
    link = null;
  }
  if (!link) {
    if (description.type !== "offer") return;
    link = newLink(from);
  }
  await link.acceptDescription(description);
}

function tileKeyOf(peerId) {
  if (!isGroup()) return peerId;
  for (const [slot, id] of call.slots) if (id === peerId) return `slot-${slot}`;
  return null;
}

function showSlots() {
  if (!call.sfu) return;
  for (const [slot, id] of call.slots) {
    const key = `slot-${slot}`;
    if (id) ui.showRemote(key, call.sfu.slotStream(slot), ui.personName(peer(id)));
    else ui.removeRemote(key);
  }
  e2eeView.markTiles();
}

// --- the person's actions ----------------------------------------------------------------------

ui.onConsent(async (name, button) => {
  if (call.consented || call.final) return;
  if (button) button.disabled = true;
  try {
    call.stream = await openLocalMedia();
  } catch (error) {
    console.warn("no camera/microphone", error.name);
    signaling.close();
    finish(State.ERROR);
    ui.showError("media-denied");
    update();
    return;
  }
  call.consented = true;
  call.name = name;
  ui.showSelf(call.stream);
  attachControls(call.stream, () => [...call.links.values(), call.sfu].filter(Boolean));
  monitor.start();
  if (!call.notStarted) await join();
  update();
});

ui.toggleButton("mute", (muted) => {
  setTracksEnabled(call.stream, "audio", !muted);
  return muted ? "controls.unmute" : "controls.mute";
});

ui.toggleButton("camera", (off) => {
  setTracksEnabled(call.stream, "video", !off);
  return off ? "controls.camera.on" : "controls.camera.off";
});

ui.onClick("leave", () => {
  send("leave");
  signaling.close(); // closed by us: no close event, no reconnect
  finish(State.ENDED);
  ui.showEnded("left", { rejoin: true });
  update();
});

ui.onClick("rejoin", () => location.replace(localPath(location.pathname)));
ui.onClick("retry", () => location.replace(localPath(location.pathname)));

// --- start ---------------------------------------------------------------------------------------

/** The `auth` for `hello`: a link token from the fragment (then removed), or what is stored. */
function readAuth() {
  if (location.pathname === "/j" && location.hash) {
    const token = linkToken(location.hash);
    history.replaceState(null, "", location.pathname + location.search);
    if (!token) return null;
    storeAuth({ link: token });
    return { link: token };
  }
  return loadAuth();
}

function start() {
  const hadFragment = location.pathname === "/j" && location.hash !== "";
  call.auth = readAuth();
  if (!window.RTCPeerConnection || !navigator.mediaDevices) {
    finish(State.ERROR);
    ui.showError("unsupported");
  } else if (!call.auth) {
    finish(State.ERROR);
    ui.showError(hadFragment ? "bad-link" : "no-credentials");
  } else {
    connect();
  }
  update();
}

start();
