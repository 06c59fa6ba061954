"""Signaling: the front door of every call (admission, relay, media pod control, presence)."""
