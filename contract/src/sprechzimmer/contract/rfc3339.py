"""RFC 3339 timestamps as Kubernetes writes them, parsed and formatted in one place. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_time(text: str | None) -> datetime | None:
    """RFC 3339 (``Z`` or an offset) → aware UTC datetime; None or empty stays None.

    A timestamp without an offset is taken as UTC. Raises ValueError for anything else.
    """
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """Aware datetime → RFC 3339 in UTC with whole seconds (``2026-11-21T10:30:00Z``)."""
    return value.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
