from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sprechzimmer.contract.rfc3339 import format_time, parse_time

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-21T10:30:00Z",
        "2026-11-21T10:30:00z",
        "2026-11-21T11:30:00+01:00",
        "2026-11-21T10:30:00",
    ],
)
def test_parse_time_gives_aware_utc(text: str) -> None:
    assert parse_time(text) == datetime(2026, 11, 21, 10, 30, tzinfo=UTC)


def test_parse_time_passes_none_and_refuses_garbage() -> None:
    assert parse_time(None) is None
    assert parse_time("") is None
    with pytest.raises(ValueError, match="Invalid isoformat"):
        parse_time("morgen früh")


def test_format_time_is_utc_whole_seconds() -> None:
    vienna = timezone(timedelta(hours=1))
    value = datetime(2026, 11, 21, 11, 30, 0, 900_000, tzinfo=vienna)
    assert format_time(value) == "2026-11-21T10:30:00Z"
    assert parse_time(format_time(value)) == value.replace(microsecond=0)
