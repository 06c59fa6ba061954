"""REST paths and error classes of the operator's Kubernetes adapter (no cluster needed; the
cluster tests run every verb against a real API server)."""

from __future__ import annotations

import pytest
from sprechzimmer.operator.adapters.kube import (
    API_VERSION,
    PLURALS,
    Conflict,
    Gone,
    Permanent,
    Retry,
    classify,
    collection_path,
    object_path,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("api_version", "plural", "namespace", "expected"),
    [
        ("v1", "secrets", "praxis-a", "/api/v1/namespaces/praxis-a/secrets"),
        ("v1", "nodes", None, "/api/v1/nodes"),
        (
            API_VERSION,
            "videosessions",
            "p",
            "/apis/sprechzimmer.io/v1alpha1/namespaces/p/videosessions",
        ),
        ("kopf.dev/v1", "clusterkopfpeerings", None, "/apis/kopf.dev/v1/clusterkopfpeerings"),
    ],
)
def test_collection_paths(
    api_version: str, plural: str, namespace: str | None, expected: str
) -> None:
    assert collection_path(api_version, plural, namespace) == expected


def test_object_path_quotes_the_name() -> None:
    assert object_path("v1", "pods", "p", "a/b") == "/api/v1/namespaces/p/pods/a%2Fb"


def test_every_kind_the_operator_writes_has_a_plural() -> None:
    for kind in ("Secret", "Pod", "Event"):
        assert ("v1", kind) in PLURALS
    assert PLURALS[(API_VERSION, "UsageRecord")] == "usagerecords"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (404, Gone),
        (409, Conflict),
        (429, Retry),
        (500, Retry),
        (503, Retry),
        (400, Permanent),
        (403, Permanent),
        (422, Permanent),
    ],
)
def test_error_classes(code: int, kind: type[Exception]) -> None:
    assert type(classify(code, "m")) is kind


def test_a_conflict_is_retried() -> None:
    assert isinstance(classify(409, "m"), Retry)
