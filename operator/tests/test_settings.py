from __future__ import annotations

from datetime import timedelta

import pytest
from operator_builders import KEY
from pydantic import ValidationError
from sprechzimmer.contract import Region
from sprechzimmer.operator.core.settings import OperatorSettings

pytestmark = pytest.mark.unit


def test_defaults() -> None:
    s = OperatorSettings(shared_key=KEY)
    assert s.lead_time == timedelta(minutes=5)
    assert s.idle_timeout == timedelta(minutes=10)
    assert s.retention == timedelta(hours=1)
    assert s.usage_record_retention == timedelta(days=90)
    assert (s.host_port_min, s.host_port_max) == (10000, 20000)
    assert {"de-fra", "de-ber", "eu-central-1", "germanywestcentral"} <= s.allowed_regions(
        Region.DE
    )
    assert "at-vie" in s.allowed_regions(Region.AT)
    assert "nl-ams" not in s.allowed_regions(Region.DE) | s.allowed_regions(Region.AT)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"shared_key": "short"}, "at least 32 bytes"),
        ({"host_port_min": 20001}, "must not exceed"),
        ({"region_allow_list": {"de": ["de-fra"], "at": []}}, "at least one region"),
        ({"region_allow_list": {"de": ["x"], "at": ["x"]}}, "both"),
        ({"presence_max_vouch": timedelta(seconds=61)}, "at most 60s"),
        ({"idle_timeout": timedelta(0)}, "positive"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_invalid_settings_are_rejected_with_a_reason(
    overrides: dict[str, object], message: str
) -> None:
    values: dict[str, object] = {"shared_key": KEY, **overrides}
    with pytest.raises(ValidationError, match=message):
        OperatorSettings(**values)  # type: ignore[arg-type]


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPRECHZIMMER_OPERATOR_SHARED_KEY", KEY)
    monkeypatch.setenv("SPRECHZIMMER_OPERATOR_LEAD_TIME", "PT2M")
    monkeypatch.setenv("SPRECHZIMMER_OPERATOR_MEDIA_RESOURCES__LIMITS_CPU", "2")
    s = OperatorSettings()  # type: ignore[call-arg]
    assert s.lead_time == timedelta(minutes=2)
    assert s.media_resources.limits_cpu == "2"


@pytest.mark.parametrize(
    ("text", "seconds"), [("10m", 600), ("1h30m", 5400), ("4", 4), ("2.5", 2.5), ("PT5M", 300)]
)
def test_duration_formats(text: str, seconds: float) -> None:
    assert OperatorSettings(shared_key=KEY, idle_timeout=text).idle_timeout == timedelta(
        seconds=seconds
    )  # type: ignore[arg-type]
