"""TLS where signaling terminates it itself: TR-02102-2 (TLS 1.2 with ECDHE + AES-GCM, or 1.3)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from sprechzimmer.devcluster.pki import CertificateAuthority
from sprechzimmer.signaling.__main__ import tls_context

pytestmark = pytest.mark.unit


def test_only_tls12_aead_with_ecdhe_or_tls13(tmp_path: Path) -> None:
    pair = CertificateAuthority(tmp_path).issue("sig", "signaling", server_names=("127.0.0.1",))
    context = tls_context(str(pair.cert), str(pair.key))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    for cipher in context.get_ciphers():
        if cipher["protocol"] == "TLSv1.2":
            assert cipher["kea"] == "kx-ecdhe", cipher["name"]
            assert "GCM" in cipher["name"], cipher["name"]


async def test_an_old_client_is_refused(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    pair = ca.issue("sig", "signaling", server_names=("127.0.0.1",))

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")
        await writer.drain()
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(
        greet, "127.0.0.1", 0, ssl=tls_context(str(pair.cert), str(pair.key))
    )
    port = server.sockets[0].getsockname()[1]
    old = ssl.create_default_context(cafile=str(ca.pair.cert))
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    old.set_ciphers("ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA")  # CBC: not allowed
    async with server:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            await asyncio.open_connection("127.0.0.1", port, ssl=old)
        good = ssl.create_default_context(cafile=str(ca.pair.cert))
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=good)
        assert await reader.readexactly(2) == b"ok"
        writer.close()
