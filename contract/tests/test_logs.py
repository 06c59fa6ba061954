from __future__ import annotations

import json
import logging

import pytest
from sprechzimmer.contract.logs import JsonFormatter

pytestmark = pytest.mark.unit


def test_one_json_object_per_record_with_extras() -> None:
    record = logging.makeLogRecord(
        {
            "name": "t",
            "levelname": "INFO",
            "msg": "joined %s",
            "args": ("slot",),
            "created": 1767000000.25,
            "msecs": 250.0,
            "namespace": "praxis-1",
            "count": 3,
            "obj": {"nested": True},
        }
    )
    out = json.loads(JsonFormatter().format(record))
    assert out == {
        "ts": "2025-12-29T09:20:00.250Z",
        "level": "info",
        "logger": "t",
        "msg": "joined slot",
        "namespace": "praxis-1",
        "count": 3,
        "obj": "{'nested': True}",
    }
