// The call's media links watched through getStats(): a dead path is noticed within ~1.5 s and
// handed to call.js for repair (reconnect.js decides resume or rejoin), the own video follows the
// degradation ladder (degrade.js), and every person gets a quality level (quality.js). This is
// the shell: it reads stats, keeps the per-link records and applies sender parameters; every
// decision comes from the pure modules.

import { encodingFor, newLadder, nextRung, VIDEO_OFF } from "./degrade.js";
import { inboundDelta, sampleOf } from "./netstats.js";
import { qualityOf } from "./quality.js";
import { isDown, newWatch, nextAction, observe } from "./reconnect.js";
import * as view from "./qualityview.js";

const TICK_MS = 500; // liveness: a dead path is seen after SILENT_MS plus at most one tick
const QUALITY_EVERY = 2; // ticks: quality and the video ladder every second

/**
 * A watched link, as call.js describes it on each tick.
 * @typedef {object} Watched
 * @property {string} key "sfu" or the other person's peer id (stable across rejoins)
 * @property {RTCPeerConnection} pc the link's current connection
 * @property {boolean} drives this side repairs the link (reconnect.js nextAction)
 * @property {boolean} resumable the other end can restart ICE
 * @property {boolean} expecting someone sends to this page on it (silence means a dead path)
 * @property {{tile: string, mids: string[]}[]} tiles remote tiles fed by this link
 */

export class Monitor {
  /**
   * @param {object} options
   * @param {() => Watched[]} options.links the links to watch now
   * @param {() => boolean} options.canSignal the socket is admitted and joined
   * @param {(key: string, action: string) => void} options.repair resume or rejoin a link
   * @param {() => void} options.onChange a link went down or came back (page state)
   */
  constructor({ links, canSignal, repair, onChange }) {
    this.links = links;
    this.canSignal = canSignal;
    this.repair = repair;
    this.onChange = onChange;
    this.records = new Map(); // key → {watch, pc, ladder, sample}
    this.ticks = 0;
    this.timer = null;
    this.running = false;
  }

  start() {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), TICK_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.records.clear();
  }

  /** Whether a link that was up is down now (the page shows `reconnecting`). */
  anyDown() {
    return [...this.records.values()].some((r) => isDown(r.watch));
  }

  async tick() {
    if (this.running) return; // a slow getStats on a busy machine: skip, do not pile up
    this.running = true;
    try {
      this.ticks += 1;
      const links = this.links();
      const keys = new Set(links.map((l) => l.key));
      for (const key of this.records.keys()) if (!keys.has(key)) this.records.delete(key);
      const wasDown = this.anyDown();
      const levels = [];
      for (const link of links) levels.push(await this.watch(link));
      if (this.ticks % QUALITY_EVERY === 0) view.showOwnQuality(worst(levels));
      if (this.anyDown() !== wasDown) this.onChange();
    } catch (error) {
      console.warn("monitor", error.name);
    } finally {
      this.running = false;
    }
  }

  /** One link: liveness and repair every tick, quality and the ladder every second. */
  async watch(link) {
    const now = performance.now();
    let record = this.records.get(link.key);
    if (!record) {
      record = { watch: newWatch(), pc: null, ladder: null, sample: null };
      this.records.set(link.key, record);
    }
    if (record.pc !== link.pc) { // a new connection (rejoin): fresh counters and full video
      record.pc = link.pc;
      record.ladder = null;
      record.sample = null;
    }
    const sample = sampleOf((await link.pc.getStats()).values());
    record.watch = observe(record.watch, {
      connectionState: link.pc.connectionState,
      iceConnectionState: link.pc.iceConnectionState,
      bytesReceived: link.expecting ? sample.bytesReceived : null,
    }, now);
    const pending = ["new", "connecting"].includes(link.pc.connectionState) ||
      link.pc.iceConnectionState === "checking";
    const step = nextAction(record.watch, now, {
      canSignal: this.canSignal(), drives: link.drives, resumable: link.resumable, pending,
    });
    record.watch = step.watch;
    if (step.action !== "none") {
      console.info(`call: media link down, ${step.action}`);
      this.repair(link.key, step.action);
    }
    if (this.ticks % QUALITY_EVERY !== 0) return null;
    const before = record.sample;
    record.sample = sample;
    for (const { tile, mids } of link.tiles) {
      const delta = inboundDelta(before, sample, mids);
      const silent = before !== null && delta.packets === 0;
      view.showTileQuality(tile, qualityOf({ loss: delta.loss, rttMs: sample.rttMs, bps: null, silent }));
      // Their audio arrives but no video: their link switched their picture off (or it froze).
      view.showTilePaused(tile, before !== null && delta.audioPackets > 0 && delta.videoPackets === 0);
    }
    if (record.watch.up) await this.steer(link, record, sample, now);
    return qualityOf({ loss: sample.sendLoss, rttMs: sample.rttMs, bps: sample.availableOutgoingBps });
  }

  /** The own video's rung on this link (degrade.js), applied when it changes. */
  async steer(link, record, sample, now) {
    const sender = link.pc.getSenders().find((s) => s.track?.kind === "video");
    if (!sender) return;
    if (!record.ladder) {
      record.ladder = newLadder(now);
      await applyRung(link.pc, sender, record.ladder.rung);
      return;
    }
    const next = nextRung(record.ladder, {
      bps: sample.availableOutgoingBps, loss: sample.sendLoss, limitation: sample.limitation,
    }, now);
    if (next.rung !== record.ladder.rung) {
      console.info(`call: video rung ${record.ladder.rung} -> ${next.rung}`);
      await applyRung(link.pc, sender, next.rung);
    }
    record.ladder = next;
    view.showOwnVideoPaused([...this.records.values()].some((r) => r.ladder?.rung === VIDEO_OFF));
  }
}

/** Video to the rung's encoding; audio first in line for the network (DSCP/priority). */
async function applyRung(pc, videoSender, rung) {
  const params = videoSender.getParameters();
  if (!params.encodings?.length) return;
  Object.assign(params.encodings[0], encodingFor(rung));
  await videoSender.setParameters(params);
  const audioSender = pc.getSenders().find((s) => s.track?.kind === "audio");
  const audio = audioSender?.getParameters();
  if (audio?.encodings?.length && audio.encodings[0].networkPriority !== "high") {
    audio.encodings[0].priority = "high";
    audio.encodings[0].networkPriority = "high";
    await audioSender.setParameters(audio);
  }
}

const ORDER = ["good", "medium", "poor"];
function worst(levels) {
  const known = levels.filter(Boolean);
  return known.length ? known.reduce((a, b) => (ORDER.indexOf(b) > ORDER.indexOf(a) ? b : a)) : null;
}
