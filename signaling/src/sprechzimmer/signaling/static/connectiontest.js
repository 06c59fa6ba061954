// The connection test page (/test): camera with preview, microphone with a level meter, the
// platform's TURN server, and the bandwidth through it. No code needed, nothing leaves the page
// except the test's own data, which goes to the TURN server and straight back.
// Measuring here and in relayprobe.js; judging in connectionverdict.js; showing in show().

import { duration, lang, t } from "./i18n.js";
import {
  bandwidthVerdict, bitsPerSecond, cameraVerdict, delayVerdict, GUIDANCE, Level,
  microphoneVerdict, overallVerdict, turnVerdict,
} from "./connectionverdict.js";
import { probeRelay } from "./relayprobe.js";

const CREDENTIALS_PATH = "/test/turn-credentials";
const TICK_MS = 100; // level meter and pending checks

const byId = (id) => document.getElementById(id);
const main = document.querySelector("main");
const startButton = byId("test-start");

/** Everything measured so far; the verdicts are recomputed from it on every change. */
let facts;
let run = 0; // a new run makes the older one's late results harmless
let stream = null;
let audio = null;
let ticker = null;

function freshFacts() {
  return {
    camera: { errorName: null, width: 0, openedAt: null },
    microphone: { errorName: null, peak: 0, openedAt: null },
    network: {
      credentials: null, relayed: false, errorCodes: [], done: false, rttMs: null,
      bytes: 0, ms: 0, retryAfter: 0,
    },
  };
}

function verdicts(now) {
  const { camera, microphone, network } = facts;
  const since = (at) => (at === null ? 0 : now - at);
  const bps = bitsPerSecond(network.bytes, network.ms);
  return {
    camera: cameraVerdict({
      ...camera, opened: camera.openedAt !== null, waitedMs: since(camera.openedAt),
    }),
    microphone: microphoneVerdict({
      ...microphone, opened: microphone.openedAt !== null, listenedMs: since(microphone.openedAt),
    }),
    turn: turnVerdict(network),
    bandwidth: bandwidthVerdict({ done: network.done, measured: network.bytes > 0, bps }),
  };
}

const number = (value, digits) =>
  new Intl.NumberFormat(lang === "en" ? "en-GB" : "de-DE", { maximumFractionDigits: digits })
    .format(value);

function setResult(check, { level, key }, vars = {}) {
  const element = byId(`test-${check}-result`);
  const text = t(key, vars);
  if (element.textContent !== text) element.textContent = text;
  element.closest("[data-check]").dataset.result = level;
}

/** Show every check's current result, and the overall line once nothing is pending. */
function show() {
  const now = performance.now();
  const results = verdicts(now);
  const { network } = facts;
  setResult("camera", results.camera);
  setResult("microphone", results.microphone);
  setResult("turn", results.turn, { wait: duration(network.retryAfter) });
  const mbps = bitsPerSecond(network.bytes, network.ms) / 1e6;
  setResult("bandwidth", results.bandwidth, {
    mbps: number(mbps, 1),
    pair: number(GUIDANCE.pairBps / 1e6, 0),
    group: number(GUIDANCE.groupBps / 1e6, 0),
  });
  const delay = network.done ? delayVerdict(network.rttMs) : null;
  const delayLine = byId("test-delay");
  delayLine.hidden = !delay;
  if (delay) delayLine.textContent = t(delay.key, { ms: number(network.rttMs, 0) });
  const overall = overallVerdict([...Object.values(results), delay]);
  main.dataset.state = overall.level === Level.PENDING ? "running" : "done";
  setResult("overall", overall);
  if (overall.level !== Level.PENDING) {
    startButton.disabled = false;
    startButton.textContent = t("test.again");
  }
}

// --- camera and microphone -----------------------------------------------------------------

/** Camera and microphone in one permission prompt; each alone when that fails, to say which. */
async function openDevices(current) {
  const video = { width: { ideal: 640 }, height: { ideal: 360 } };
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video });
  } catch {
    const tracks = [];
    for (const kind of ["camera", "microphone"]) {
      try {
        const one = await navigator.mediaDevices.getUserMedia(
          kind === "camera" ? { video } : { audio: true },
        );
        tracks.push(...one.getTracks());
      } catch (error) {
        if (current === run) facts[kind].errorName = error.name || "Error";
      }
    }
    return new MediaStream(tracks);
  }
}

async function testDevices(current) {
  if (!navigator.mediaDevices?.getUserMedia) {
    facts.camera.errorName = facts.microphone.errorName = "NotSupportedError";
    return;
  }
  const opened = await openDevices(current);
  if (current !== run) {
    for (const track of opened.getTracks()) track.stop();
    return;
  }
  stream = opened;
  const now = performance.now();
  if (stream.getVideoTracks().length > 0) {
    facts.camera.openedAt = now;
    const preview = byId("test-preview");
    preview.srcObject = new MediaStream(stream.getVideoTracks());
    preview.hidden = false;
    preview.addEventListener("loadeddata", () => {
      if (current === run) facts.camera.width = preview.videoWidth;
      show();
    }, { once: true });
  }
  if (stream.getAudioTracks().length > 0) {
    facts.microphone.openedAt = now;
    audio = listen(new MediaStream(stream.getAudioTracks()));
  }
}

/** An analyser on the microphone: its loudness (RMS, 0…1) whenever asked. */
function listen(microphone) {
  const context = new AudioContext();
  context.resume().catch(() => {}); // started by the click on "Test starten": allowed to run
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  context.createMediaStreamSource(microphone).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  return {
    context,
    level() {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const sample of samples) sum += sample * sample;
      return Math.sqrt(sum / samples.length);
    },
  };
}

function tick() {
  if (audio) {
    const level = audio.level();
    facts.microphone.peak = Math.max(facts.microphone.peak, level);
    byId("test-level").value = Math.min(1, level * 4); // speech sits around 0.05–0.25 RMS
  }
  show();
}

// --- TURN server and bandwidth ---------------------------------------------------------------

async function fetchIceServers() {
  try {
    const response = await fetch(CREDENTIALS_PATH, { method: "POST", cache: "no-store" });
    if (response.status === 429) {
      return { credentials: "rate-limited", retryAfter: Number(response.headers.get("Retry-After")) || 60 };
    }
    if (!response.ok) return { credentials: "error" };
    const { iceServers } = await response.json();
    return iceServers.length > 0 ? { credentials: "issued", iceServers } : { credentials: "none" };
  } catch {
    return { credentials: "error" };
  }
}

async function testNetwork(current) {
  const answer = await fetchIceServers();
  if (current !== run) return;
  const { network } = facts;
  network.credentials = answer.credentials;
  network.retryAfter = answer.retryAfter ?? 0;
  if (answer.credentials !== "issued") {
    network.done = true;
    return;
  }
  const measured = await probeRelay(answer.iceServers, {
    onConnected: (path) => {
      if (current !== run) return;
      network.relayed = path.relayed; // shown while the bandwidth is still measured
      show();
    },
  });
  if (current !== run) return;
  Object.assign(network, measured, { done: true });
}

// --- the run ---------------------------------------------------------------------------------

function stopDevices() {
  for (const track of stream?.getTracks() ?? []) track.stop();
  audio?.context.close();
  stream = audio = null;
  byId("test-level").value = 0;
}

async function start() {
  run += 1;
  const current = run;
  stopDevices();
  facts = freshFacts();
  startButton.disabled = true;
  byId("test-results").hidden = false;
  clearInterval(ticker);
  ticker = setInterval(tick, TICK_MS);
  show();
  await Promise.all([
    testDevices(current).catch((error) => {
      facts.camera.errorName ??= error.name || "Error";
      facts.microphone.errorName ??= error.name || "Error";
    }),
    testNetwork(current).catch(() => {
      facts.network.credentials ??= "error";
      facts.network.done = true;
    }),
  ]);
  if (current === run) show();
}

startButton.addEventListener("click", start);
window.addEventListener("pagehide", stopDevices);
