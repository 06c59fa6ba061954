"""The lifecycle's deadlines, all absolute times derived from spec and status. No I/O.

Because every deadline is recomputed from the object, a restarted operator cannot lose one.
"""

from __future__ import annotations

from datetime import datetime

from sprechzimmer.operator.core.model import Session
from sprechzimmer.operator.core.settings import OperatorSettings


def expires_at(session: Session) -> datetime:
    """Codes stop working at scheduledStart + codeTTL."""
    return session.scheduled_start + session.code_ttl


def start_window(session: Session, settings: OperatorSettings) -> datetime:
    """When the session becomes joinable (and a group call's media pod is started)."""
    return session.scheduled_start - settings.lead_time


def delete_at(session: Session, settings: OperatorSettings) -> datetime:
    """Expired sessions are deleted after the retention."""
    return expires_at(session) + settings.retention


def idle_since(session: Session, changed_at: datetime | None) -> datetime:
    """Since when nobody has been present, given that nobody is now and the count last changed
    at ``changed_at``.

    A session nobody ever joined counts as empty from its scheduled start, so a no-show
    releases its media pod after the idle timeout too.
    """
    if changed_at is None:
        return session.scheduled_start
    return max(changed_at, session.scheduled_start)


def idle_deadline(
    session: Session, changed_at: datetime | None, settings: OperatorSettings
) -> datetime:
    return idle_since(session, changed_at) + settings.idle_timeout
