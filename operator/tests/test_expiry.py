from __future__ import annotations

from datetime import timedelta

import pytest
from operator_builders import at, session_body, settings
from sprechzimmer.operator.core import expiry
from sprechzimmer.operator.core.model import Session

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("ttl", "expires"),
    [("24h", at(hours=24)), ("90m", at(minutes=90)), ("1h30m", at(minutes=90)), ("45s", at(45))],
)
def test_expires_at_is_start_plus_ttl(ttl: str, expires: object) -> None:
    assert expiry.expires_at(Session.parse(session_body(ttl=ttl))) == expires


def test_windows_and_deadlines() -> None:
    s = Session.parse(session_body())
    cfg = settings(
        lead_time=timedelta(minutes=5),
        retention=timedelta(hours=1),
        idle_timeout=timedelta(minutes=10),
    )
    assert expiry.start_window(s, cfg) == at(minutes=-5)
    assert expiry.delete_at(s, cfg) == at(hours=25)
    assert expiry.idle_deadline(s, None, cfg) == at(minutes=10)  # no-show: from scheduled start
    assert expiry.idle_deadline(s, at(minutes=30), cfg) == at(minutes=40)
    assert expiry.idle_deadline(s, at(minutes=-30), cfg) == at(minutes=10)  # never before start
