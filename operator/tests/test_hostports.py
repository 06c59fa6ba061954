from __future__ import annotations

import random

import pytest
from sprechzimmer.operator.core.hostports import PortRange, PortUse, allocate, collisions

pytestmark = pytest.mark.unit
R = PortRange(10000, 10002)


@pytest.mark.parametrize(
    ("nodes", "uses", "expected"),
    [
        (["a", "b"], [], "any"),
        ([], [], None),  # no allowed node: nothing to allocate
        # ports held on one node are still free on the other; prefer a port free everywhere
        (["a", "b"], [PortUse(10000, "a"), PortUse(10001, "a")], {10002}),
        (
            ["a", "b"],
            [PortUse(10000, "a"), PortUse(10001, "a"), PortUse(10002, "a")],
            {10000, 10001, 10002},
        ),
        # an unscheduled pod's port is taken everywhere
        (["a", "b"], [PortUse(10000, None), PortUse(10001, None), PortUse(10002, "a")], {10002}),
        (["a"], [PortUse(10000, "a"), PortUse(10001, "a"), PortUse(10002, "a")], None),
        (["a", "b"], [PortUse(p, n) for p in (10000, 10001, 10002) for n in "ab"], None),
        # pods on nodes outside the allow-list do not count
        (["a"], [PortUse(p, "x") for p in (10000, 10001, 10002)], "any"),
        # ports outside the range are ignored
        (["a"], [PortUse(9999, None), PortUse(20000, None)], "any"),
    ],
)
def test_allocate_table(nodes: list[str], uses: list[PortUse], expected: object) -> None:
    port = allocate(R, nodes, uses, seed="s")
    if expected == "any":
        assert port in R
    elif expected is None:
        assert port is None
    else:
        assert port in expected  # type: ignore[operator]


def test_deterministic_for_same_inputs() -> None:
    uses = [PortUse(10000, "a")]
    assert allocate(R, ["a", "b"], uses, "uid-1") == allocate(R, ["a", "b"], uses, "uid-1")


def test_many_sessions_on_few_nodes_never_collide() -> None:
    """Simulate 500 allocations with random scheduling onto 3 nodes and a 200-port range."""
    rng = random.Random(7)
    ports = PortRange(10000, 10199)
    nodes = ["a", "b", "c"]
    uses: list[PortUse] = []
    for i in range(500):
        port = allocate(ports, nodes, uses, f"uid-{i}")
        if port is None:
            break
        free_nodes = [n for n in nodes if all(u.port != port or u.node != n for u in uses)]
        uses.append(PortUse(port, rng.choice(free_nodes)))
    assert len(uses) == 500  # 200 ports x 3 nodes leave room for all
    assert collisions(uses) == {}


def test_invalid_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid port range"):
        PortRange(20000, 10000)
