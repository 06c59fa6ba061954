"""Fixtures for the operator's tests (the builders live in operator_builders.py)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from operator_builders import settings
from sprechzimmer.operator.core.settings import OperatorSettings


@pytest.fixture
def default_settings() -> OperatorSettings:
    return settings()


@pytest.fixture
def region(cluster: Any) -> Iterator[Callable[..., str]]:
    """Dedicated KWOK nodes in a fresh region, so tests never compete for capacity."""
    made: list[str] = []

    def make(count: int = 2, **node: Any) -> str:
        name = f"de-t{secrets.token_hex(3)}"
        for i in range(count):
            cluster.add_node(
                f"{name}-{i}", name, f"{name}-a", external_ip=f"203.0.113.{100 + len(made)}", **node
            )
            made.append(f"{name}-{i}")  # add_node returns once it is Ready and untainted
        return name

    yield make
    for node in made:
        cluster.delete_node(node)
