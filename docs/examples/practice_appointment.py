#!/usr/bin/env python3
"""A practice's web app books a video appointment and fetches the two join links to send.

Standard library only. It talks to the Kubernetes API with the token of a ServiceAccount bound to
the chart's practice Role (create/get/list/watch/delete VideoSessions, get Secrets — nothing
else), in the practice's own namespace. docs/practice-api.md explains it; the chart's tests run
it against a real API server and operator.

    python3 practice_appointment.py https://k8s.example:6443 ca.crt praxis-muster "$TOKEN"
"""

from __future__ import annotations

import base64
import json
import ssl
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any


class Api:
    def __init__(self, server: str, ca_file: str, token: str) -> None:
        self.server = server.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca_file)
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.server + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self.context, timeout=10) as answer:
            return json.load(answer)


def book(
    api: Api,
    namespace: str,
    *,
    host: str,
    clients: list[str],
    start: datetime,
    region: str = "de",
) -> str:
    """Create the appointment; returns its name (the API server picks it: `termin-xxxxx`)."""
    session = {
        "apiVersion": "sprechzimmer.io/v1alpha1",
        "kind": "VideoSession",
        "metadata": {"generateName": "termin-"},
        "spec": {
            "host": host,  # the practice's handle, as people type it on the start page
            "participants": [{"id": c} for c in clients],  # your own client ids, 1 to 4
            "scheduledStart": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "codeTTL": "24h",  # codes and links stop working 24 h after the start
            "region": region,  # de or at: where the media of a group call may run
        },
    }
    path = f"/apis/sprechzimmer.io/v1alpha1/namespaces/{namespace}/videosessions"
    return str(api.call("POST", path, session)["metadata"]["name"])


def join_links(api: Api, namespace: str, name: str, timeout: float = 30) -> tuple[str, str]:
    """The host's and the clients' join links, from the Secret `<name>-codes` (the operator's)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            secret = api.call("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}-codes")
        except urllib.error.HTTPError as error:
            if error.code != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)  # the operator issues the codes within a second or so
            continue
        data = secret["data"]
        return (
            base64.b64decode(data["host-link"]).decode(),
            base64.b64decode(data["client-link"]).decode(),
        )


def main() -> None:
    server, ca_file, namespace, token = sys.argv[1:5]
    api = Api(server, ca_file, token)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    name = book(api, namespace, host="dr-muster", clients=["klient-7"], start=start)
    host_link, client_link = join_links(api, namespace, name)
    # Send each link to its person only (e-mail, SMS, the practice's portal); never log them.
    print(f"appointment {name} at {start:%Y-%m-%d %H:%M} UTC: links ready to send")
    print("host:  ", host_link)
    print("client:", client_link)


if __name__ == "__main__":
    main()
