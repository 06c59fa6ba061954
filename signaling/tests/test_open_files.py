"""Each WebSocket is a file descriptor: signaling lifts its soft open-files limit at start."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

LOW = 256
# In a fresh process (so the test's own limit stays as it is): start from a small soft limit,
# as a container runtime may hand it over, then do what signaling does at start.
SCRIPT = f"""
import resource
from sprechzimmer.signaling.__main__ import raise_open_files_limit
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, ({LOW}, hard))
returned = raise_open_files_limit()
print(returned, *resource.getrlimit(resource.RLIMIT_NOFILE))
"""


def test_the_soft_limit_is_raised_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= LOW:
        pytest.skip(f"the hard limit here is only {hard}")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    returned, soft, hard_after = (int(x) for x in out)
    assert hard_after == hard
    assert soft == (hard if hard != resource.RLIM_INFINITY else 1 << 20)
    assert returned == soft
