"""REST paths and error classes of the operator's Kubernetes adapter (no cluster needed; the
cluster tests run every verb against a real API server)."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sprechzimmer.operator.adapters.kube import (
    API_VERSION,
    PLURALS,
    Conflict,
    Gone,
    Kube,
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


async def test_create_is_idempotent_and_a_missing_namespace_is_permanent() -> None:
    """Against a real HTTP server that answers as the API server does."""
    existing = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "have"}}

    async def post(request: web.Request) -> web.Response:
        if request.match_info["ns"] == "gone":
            body = {"message": 'namespaces "gone" not found', "code": 404}
            return web.json_response(body, status=404)
        return web.json_response({"message": "already exists", "code": 409}, status=409)

    async def get(request: web.Request) -> web.Response:
        return web.json_response(existing)

    app = web.Application()
    app.router.add_post("/api/v1/namespaces/{ns}/secrets", post)
    app.router.add_get("/api/v1/namespaces/{ns}/secrets/{name}", get)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        kube = Kube(session, str(server.make_url("")))
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "have"}}
        found, created = await kube.create({**body, "metadata": {"name": "have", "namespace": "p"}})
        assert (found, created) == (existing, False)
        with pytest.raises(Permanent, match="gone"):
            await kube.create({**body, "metadata": {"name": "x", "namespace": "gone"}})
