// Camera and microphone: asking for them, muting, and the codecs a call offers.

/** Camera + microphone; microphone only when there is no camera. Throws on refusal. */
export async function openLocalMedia() {
  const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video });
  } catch (error) {
    if (error.name !== "NotFoundError" && error.name !== "OverconstrainedError") throw error;
    return navigator.mediaDevices.getUserMedia({ audio: true });
  }
}

/** Enable or disable every track of `kind`; returns whether any track of that kind exists. */
export function setTracksEnabled(stream, kind, enabled) {
  const tracks = kind === "audio" ? stream.getAudioTracks() : stream.getVideoTracks();
  for (const track of tracks) track.enabled = enabled;
  return tracks.length > 0;
}

export function stopMedia(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

/** Restrict a transceiver to one codec (plus what the browser needs alongside, none for VP8/Opus). */
export function preferCodec(transceiver, kind, mimeType) {
  const capabilities = RTCRtpReceiver.getCapabilities(kind);
  const codecs = (capabilities?.codecs ?? []).filter(
    (codec) => codec.mimeType.toLowerCase() === mimeType,
  );
  if (codecs.length > 0) transceiver.setCodecPreferences(codecs);
}

/** The `{candidate, sdpMid, sdpMLineIndex}` the protocol carries, or null at the end. */
export function candidateMessage(candidate) {
  if (!candidate || !candidate.candidate) return null;
  return {
    candidate: candidate.candidate,
    sdpMid: candidate.sdpMid,
    sdpMLineIndex: candidate.sdpMLineIndex,
  };
}

/**
 * Replace the track of every sender of `track.kind` that sends (sendrecv / sendonly; a group
 * call's receive slots are left alone). The sender keeps its parameters and its frame
 * transform; nothing is renegotiated.
 */
export async function replaceSentTrack(pc, track) {
  if (pc.connectionState === "closed") return;
  const sending = pc.getTransceivers().filter(
    (t) => ["sendrecv", "sendonly"].includes(t.direction) && t.receiver.track.kind === track.kind,
  );
  await Promise.all(sending.map((t) => t.sender.replaceTrack(track)));
}
