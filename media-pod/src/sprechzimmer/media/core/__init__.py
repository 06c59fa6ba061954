"""Pure logic of the media pod: everything here is deterministic and does no I/O.

Time is always passed in (seconds as ``float``), never read from a clock.
"""
