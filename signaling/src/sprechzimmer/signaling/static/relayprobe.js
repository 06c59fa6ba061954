// The connection test's network part: two RTCPeerConnections in this page connected to each
// other with `iceTransportPolicy: "relay"`, so the only possible path runs through the
// platform's TURN server (out to it and back), then a bounded burst of data through that path.
// Facts only; connectionverdict.js judges them.

/** Give up on the TURN server after this long without a relayed connection. */
export const CONNECT_MS = 10_000;
/** The throughput burst ends after this long or this many bytes, whichever comes first. */
export const BURST_MS = 5_000;
export const BURST_BYTES = 10 * 1024 * 1024;

const CHUNK = 16 * 1024; // every browser sends data channel messages of this size
const BUFFERED_HIGH = 1024 * 1024; // keep the send queue short so the clock measures the network

/**
 * Connect through the TURN server in `iceServers` and measure.
 * @returns {Promise<{relayed: boolean, errorCodes: number[], rttMs: number|null,
 *   bytes: number, ms: number}>}
 */
export async function probeRelay(iceServers, { onConnected } = {}) {
  const config = { iceServers, iceTransportPolicy: "relay" };
  const sender = new RTCPeerConnection(config);
  const receiver = new RTCPeerConnection(config);
  const errorCodes = [];
  try {
    for (const [from, to] of [[sender, receiver], [receiver, sender]]) {
      from.addEventListener("icecandidate", ({ candidate }) => {
        // refused only once the other side is closed: the probe is over then
        if (candidate) to.addIceCandidate(candidate).catch(() => {});
      });
      from.addEventListener("icecandidateerror", (event) => errorCodes.push(event.errorCode));
    }
    const channel = sender.createDataChannel("probe", { ordered: true });
    const incoming = new Promise((resolve) => {
      receiver.addEventListener("datachannel", (event) => resolve(event.channel), { once: true });
    });
    await sender.setLocalDescription();
    await receiver.setRemoteDescription(sender.localDescription);
    await receiver.setLocalDescription();
    await sender.setRemoteDescription(receiver.localDescription);

    const opened = await Promise.race([
      Promise.all([opening(channel), incoming]).then(([, remote]) => remote),
      failure(sender, receiver, CONNECT_MS),
    ]);
    if (!opened) return { relayed: false, errorCodes, rttMs: null, bytes: 0, ms: 0 };
    const path = await selectedPath(sender);
    onConnected?.(path);
    const { bytes, ms } = await burst(channel, opened);
    return { ...path, errorCodes, bytes, ms };
  } finally {
    sender.close();
    receiver.close();
  }
}

function opening(channel) {
  if (channel.readyState === "open") return Promise.resolve();
  return new Promise((resolve) => channel.addEventListener("open", resolve, { once: true }));
}

/** Resolves null when either side fails, or gathers no relayed candidate, or time runs out
 * (after a success its late resolve is ignored: the race is decided). */
function failure(a, b, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    const check = () => {
      const failed = [a, b].some((pc) => pc.connectionState === "failed");
      if (failed) {
        clearTimeout(timer);
        resolve(null);
      }
    };
    for (const pc of [a, b]) pc.addEventListener("connectionstatechange", check);
    // Gathering over without a single candidate: the server cannot be reached at all.
    let relayed = 0;
    let complete = 0;
    for (const pc of [a, b]) {
      pc.addEventListener("icecandidate", ({ candidate }) => {
        if (candidate?.type === "relay") relayed += 1;
        if (candidate === null && (complete += 1) === 2 && relayed === 0) {
          clearTimeout(timer);
          resolve(null);
        }
      });
    }
  });
}

/** The selected candidate pair from getStats: both ends relayed, and its round-trip time.
 * Chromium and Safari name it in the transport's stats; Firefox has no transport stats and
 * marks the pair itself (`selected`). */
async function selectedPath(pc) {
  const report = await pc.getStats();
  const byId = new Map();
  report.forEach((stat) => byId.set(stat.id, stat));
  const stats = [...byId.values()];
  const named = stats.find((s) => s.type === "transport" && s.selectedCandidatePairId);
  const pair = named
    ? byId.get(named.selectedCandidatePairId)
    : stats.find((s) => s.type === "candidate-pair" && s.selected);
  const local = byId.get(pair?.localCandidateId);
  const remote = byId.get(pair?.remoteCandidateId);
  const rtt = pair?.currentRoundTripTime;
  return {
    relayed: local?.candidateType === "relay" && remote?.candidateType === "relay",
    rttMs: typeof rtt === "number" ? Math.round(rtt * 1000) : null,
  };
}

/** Send for at most BURST_MS or BURST_BYTES; count what arrives, on this page's one clock. */
function burst(channel, remote) {
  return new Promise((resolve) => {
    const payload = new Uint8Array(CHUNK);
    const started = performance.now();
    let sent = 0;
    let received = 0;
    let lastArrival = started;
    const finish = () => {
      clearTimeout(timer);
      remote.onmessage = null;
      channel.onbufferedamountlow = null;
      resolve({ bytes: received, ms: lastArrival - started });
    };
    const timer = setTimeout(finish, BURST_MS);
    remote.binaryType = "arraybuffer";
    remote.onmessage = ({ data }) => {
      received += data.byteLength;
      lastArrival = performance.now();
      if (received >= BURST_BYTES) finish();
    };
    const fill = () => {
      while (sent < BURST_BYTES && channel.bufferedAmount < BUFFERED_HIGH) {
        if (performance.now() - started >= BURST_MS) return;
        channel.send(payload);
        sent += CHUNK;
      }
    };
    channel.bufferedAmountLowThreshold = BUFFERED_HIGH / 2;
    channel.onbufferedamountlow = fill;
    fill();
  });
}
