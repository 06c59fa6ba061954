// What the page reads from a peer connection's getStats(): one compact sample per connection,
// and rates between two samples. Pure functions over plain stats objects (no I/O), so the same
// code runs on a live RTCStatsReport and on a table in a test.

/**
 * @param {Iterable<object>} report the values of an RTCStatsReport
 * @returns {{bytesReceived: number, rttMs: number|null, availableOutgoingBps: number|null,
 *   sendLoss: number|null, limitation: string|null, inbound: Object<string, object>,
 *   outboundVideoBytes: number, outboundAudioPackets: number}}
 *   inbound: per `mid` {kind, packetsReceived, packetsLost, bytesReceived, framesDecoded}
 */
export function sampleOf(report) {
  const stats = [...report];
  const byId = new Map(stats.map((s) => [s.id, s]));
  const transport = stats.find((s) => s.type === "transport" && s.selectedCandidatePairId);
  const pair =
    byId.get(transport?.selectedCandidatePairId) ??
    stats.find((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded");
  // Over every candidate pair, not just the selected one: right after an ICE restart media
  // already flows on the new pair while the transport may still name the old one.
  const bytesReceived = stats
    .filter((s) => s.type === "candidate-pair")
    .reduce((sum, s) => sum + (s.bytesReceived ?? 0), 0);
  const sample = {
    bytesReceived,
    rttMs: pair?.currentRoundTripTime != null ? pair.currentRoundTripTime * 1000 : null,
    availableOutgoingBps: pair?.availableOutgoingBitrate ?? null,
    sendLoss: null,
    limitation: null,
    inbound: {},
    outboundVideoBytes: 0,
    outboundAudioPackets: 0,
  };
  for (const s of stats) {
    if (s.type === "inbound-rtp" && s.mid != null) {
      sample.inbound[s.mid] = {
        kind: s.kind,
        packetsReceived: s.packetsReceived ?? 0,
        packetsLost: Math.max(s.packetsLost ?? 0, 0),
        bytesReceived: s.bytesReceived ?? 0,
        framesDecoded: s.framesDecoded ?? 0,
      };
    } else if (s.type === "remote-inbound-rtp" && s.fractionLost != null) {
      sample.sendLoss = Math.max(sample.sendLoss ?? 0, s.fractionLost);
    } else if (s.type === "outbound-rtp" && s.kind === "video") {
      sample.outboundVideoBytes += s.bytesSent ?? 0;
      if (s.qualityLimitationReason) sample.limitation = s.qualityLimitationReason;
    } else if (s.type === "outbound-rtp" && s.kind === "audio") {
      sample.outboundAudioPackets += s.packetsSent ?? 0;
    }
  }
  return sample;
}

/**
 * What arrived on some `mids` between two samples: loss fraction, packets, video packets.
 * @returns {{loss: number|null, packets: number, videoPackets: number, audioPackets: number}}
 */
export function inboundDelta(before, after, mids) {
  let received = 0;
  let lost = 0;
  let videoPackets = 0;
  let audioPackets = 0;
  for (const mid of mids) {
    const now = after.inbound[mid];
    if (!now) continue;
    const then = before?.inbound[mid] ?? { packetsReceived: 0, packetsLost: 0 };
    const got = Math.max(now.packetsReceived - then.packetsReceived, 0);
    received += got;
    lost += Math.max(now.packetsLost - then.packetsLost, 0);
    if (now.kind === "video") videoPackets += got;
    else audioPackets += got;
  }
  const total = received + lost;
  return { loss: total > 0 ? lost / total : null, packets: received, videoPackets, audioPackets };
}
