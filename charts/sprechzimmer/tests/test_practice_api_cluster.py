"""docs/practice-api.md against the real API server: the chart's practice Role, a real token of
the bound ServiceAccount, the real operator issuing the codes, and the doc's own example script
(``docs/examples/practice_appointment.py``) booking an appointment and reading both join links.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import secrets
import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sprechzimmer.contract import JOIN_LINK_PATH

CHART = Path(__file__).resolve().parent.parent
ROOT = CHART.parent.parent
SIGNALING_URL = "https://video.praxis.example"

_spec = importlib.util.spec_from_file_location(
    "practice_appointment", ROOT / "docs/examples/practice_appointment.py"
)
assert _spec is not None
assert _spec.loader is not None
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)


def _practice_objects(namespace: str) -> str:
    result = subprocess.run(
        [
            str(ROOT / ".tools/bin/helm"),
            "template",
            "sprechzimmer",
            str(CHART),
            "--show-only",
            "templates/practices.yaml",
            "--set",
            f"practices[0].namespace={namespace}",
            "--set",
            "practices[0].serviceAccount=webapp",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@pytest.fixture
def operator_process(cluster: Any, tmp_path: Path) -> Iterator[None]:
    """The operator as a process (standalone, its own peering object) with admin credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPRECHZIMMER_OPERATOR_")}
    env |= {
        "KUBECONFIG": str(cluster.kubeconfig),
        "SPRECHZIMMER_OPERATOR_SHARED_KEY": secrets.token_hex(24),
        "SPRECHZIMMER_OPERATOR_HTTP_PORT": "0",
        "SPRECHZIMMER_OPERATOR_STANDALONE": "true",
        "SPRECHZIMMER_OPERATOR_SIGNALING_URL": SIGNALING_URL,
    }
    with (tmp_path / "operator.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sprechzimmer.operator"], env=env, stdout=log, stderr=log
        )
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _api(cluster: Any, namespace: str, tmp_path: Path) -> Any:
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())["clusters"][0]["cluster"]
    ca = tmp_path / "ca.crt"
    if "certificate-authority-data" in config:
        ca.write_bytes(base64.b64decode(config["certificate-authority-data"]))
    else:
        ca.write_bytes(Path(config["certificate-authority"]).read_bytes())
    token = cluster.kubectl(
        "-n", namespace, "create", "token", "webapp", "--duration=10m"
    ).stdout.strip()
    return example.Api(config["server"], str(ca), token)


def test_a_practice_books_an_appointment_and_reads_the_join_links(
    cluster: Any, namespace: str, operator_process: None, tmp_path: Path
) -> None:
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "webapp")
    objects = tmp_path / "practice.yaml"
    objects.write_text(_practice_objects(namespace))
    cluster.kubectl("apply", "-f", str(objects))
    api = _api(cluster, namespace, tmp_path)

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    name = example.book(api, namespace, host="dr-muster", clients=["klient-7"], start=start)
    host_link, client_link = example.join_links(api, namespace, name, timeout=60)
    assert host_link.startswith(f"{SIGNALING_URL}{JOIN_LINK_PATH}#")
    assert client_link.startswith(f"{SIGNALING_URL}{JOIN_LINK_PATH}#")
    assert host_link != client_link

    # The Role lists and cancels its own appointments …
    path = f"/apis/sprechzimmer.io/v1alpha1/namespaces/{namespace}/videosessions"
    assert [s["metadata"]["name"] for s in api.call("GET", path)["items"]] == [name]
    api.call("DELETE", f"{path}/{name}")
    # … and nothing else: no Secret listing, no status writes, no other namespace.
    forbidden = [
        ("GET", f"/api/v1/namespaces/{namespace}/secrets"),
        ("PATCH", f"{path}/{name}/status"),
        ("GET", "/apis/sprechzimmer.io/v1alpha1/namespaces/default/videosessions"),
        ("GET", f"/api/v1/namespaces/{namespace}/pods"),
    ]
    for method, denied in forbidden:
        with pytest.raises(urllib.error.HTTPError) as error:
            api.call(method, denied, {} if method == "PATCH" else None)
        assert error.value.code == 403, (method, denied, json.loads(error.value.read() or b"{}"))
