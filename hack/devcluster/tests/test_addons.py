"""Which add-ons ``up`` starts, in which order, and how they are wired to each other."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from sprechzimmer.contract.keys import shared_turn_secret
from sprechzimmer.devcluster import cli
from sprechzimmer.devcluster.addons import AddonContext, plan
from sprechzimmer.devcluster.turn import render_shared_turn_config

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("requested", "started"),
    [
        ([], ()),
        (["operator"], ("operator",)),
        (["signaling"], ("turn", "signaling")),
        (["signaling", "operator", "turn"], ("turn", "operator", "signaling")),
        (["signaling", "signaling"], ("turn", "signaling")),
    ],
)
def test_plan_brings_what_an_addon_needs_in_start_order(
    requested: list[str], started: tuple[str, ...]
) -> None:
    assert plan(requested) == started


def test_plan_names_unknown_addons() -> None:
    with pytest.raises(ValueError, match=r"unknown add-on\(s\): redis"):
        plan(["operator", "redis"])


def test_with_takes_comma_lists_and_repeats() -> None:
    assert cli._addon_names("operator,turn, signaling") == ["operator", "turn", "signaling"]
    with pytest.raises(SystemExit) as usage:
        cli.main(["up", "--with=operator,bogus"])
    assert usage.value.code == 2


def _context() -> AddonContext:
    return AddonContext(
        addons=("turn", "operator", "signaling"),
        shared_key="k" * 64,
        operator_port=1,
        signaling_port=8080,
        turn_port=3478,
    )


def test_turn_secret_is_the_one_signaling_derives_from_the_shared_key() -> None:
    config = render_shared_turn_config(_context().turn_config()).splitlines()
    assert f"static-auth-secret={shared_turn_secret(b'k' * 64)}" in config
    assert "listening-ip=127.0.0.1" in config
    assert "allowed-peer-ip=127.0.0.1" in config  # the devcluster's browsers are on loopback


def test_signaling_gets_both_turn_transports() -> None:
    context = _context()
    assert context.signaling_url == "http://127.0.0.1:8080"
    assert context.turn_urls == (
        "turn:127.0.0.1:3478?transport=udp",
        "turn:127.0.0.1:3478?transport=tcp",
    )


@pytest.mark.parametrize("path", list(cli.SAMPLE_STARTS))
def test_samples_are_live_and_the_one_to_one_starts_now(path: Path) -> None:
    now = dt.datetime(2026, 12, 2, 14, 30, 42, tzinfo=dt.UTC)
    doc = yaml.safe_load(cli.sample_session(path, now))
    start = dt.datetime.fromisoformat(doc["spec"]["scheduledStart"])
    assert now - dt.timedelta(minutes=1) < start <= now + dt.timedelta(minutes=15)
    if path == cli.ONE_TO_ONE_SAMPLE:
        assert len(doc["spec"]["participants"]) == 1
        assert start <= now
