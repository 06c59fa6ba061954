"""Signaling's pure decisions: protocol messages, admission, rate limits, rooms, presence,
ownership and settings. No I/O, no event loop, no clocks (time is passed in); mypy --strict."""
