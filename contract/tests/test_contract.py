"""The contract module and the CRD say the same thing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sprechzimmer import contract

pytestmark = pytest.mark.unit

CRD = Path(__file__).resolve().parents[2] / "crds" / "videosession.yaml"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    assert crd["metadata"]["name"] == contract.CRD_NAME
    assert crd["spec"]["group"] == contract.GROUP
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["singular"]) == (
        contract.KIND,
        contract.PLURAL,
        contract.SINGULAR,
    )
    assert names["shortNames"] == [contract.SHORT_NAME]
    assert names["categories"] == [contract.CATEGORY]
    (version,) = crd["spec"]["versions"]
    assert version["name"] == contract.VERSION
    return dict(version["schema"]["openAPIV3Schema"])


def test_phases_match(schema: dict[str, Any]) -> None:
    assert schema["properties"]["status"]["properties"]["phase"]["enum"] == [
        p.value for p in contract.Phase
    ]


def test_regions_match(schema: dict[str, Any]) -> None:
    (rule, _) = schema["properties"]["spec"]["properties"]["region"]["x-kubernetes-validations"]
    assert rule["rule"] == "self in [" + ", ".join(f"'{r.value}'" for r in contract.Region) + "]"


def test_participant_bounds_match(schema: dict[str, Any]) -> None:
    rules = schema["properties"]["spec"]["properties"]["participants"]["x-kubernetes-validations"]
    assert rules[0]["rule"] == (
        f"size(self) >= {contract.MIN_CLIENTS} && size(self) <= {contract.MAX_CLIENTS}"
    )


def test_duration_pattern_matches(schema: dict[str, Any]) -> None:
    ttl = schema["properties"]["spec"]["properties"]["codeTTL"]
    assert ttl["default"] == contract.DEFAULT_CODE_TTL
    crd_pattern = ttl["x-kubernetes-validations"][0]["rule"].split("'")[1].replace("\\\\", "\\")
    assert crd_pattern == contract.DURATION_PATTERN.pattern


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", timedelta(hours=24)),
        ("1h30m", timedelta(minutes=90)),
        ("90s", timedelta(seconds=90)),
        ("1.5h", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert contract.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1d", "-1h", "h", "24", "1h 30m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        contract.parse_duration(text)


@pytest.mark.parametrize(
    ("code", "valid"),
    [("c3f-e04-d96", True), ("000-000-000", True), ("C3F-E04-D96", False), ("c3fe04d96", False),
     ("c3f-e04-d9", False), ("g3f-e04-d96", False)],
)  # fmt: skip
def test_code_format(code: str, valid: bool) -> None:
    assert contract.is_valid_code(code) is valid
