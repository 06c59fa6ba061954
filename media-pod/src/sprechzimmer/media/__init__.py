"""Sprechzimmer media pod: a packet-forwarding SFU on aiortc with a coturn TURN sidecar.

Layers: ``core`` (pure decisions: RTP/RTCP views, rewriting, caches, slot mapping, speaker
detection, TURN configuration, control-API messages; no I/O) → ``sfu`` (the call: routes packets
between participants through ports) → ``_aiortc_hooks`` (the one adapter touching aiortc
internals) → ``app`` (aiohttp control API, health and metrics) → ``__main__`` (entrypoints).
"""
