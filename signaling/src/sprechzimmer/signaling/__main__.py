"""``python -m sprechzimmer.signaling`` / ``sprechzimmer-signaling``: serve until SIGTERM.

Settings come from ``SPRECHZIMMER_SIGNALING_*`` (docs/signaling.md); a bad value stops the
process with exit code 2 and a message naming every offending variable.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys

from aiohttp import web
from sprechzimmer.contract import logs

from .app import init_app
from .core.settings import Settings, SettingsError

# BSI TR-02102-2: TLS 1.2 with ECDHE and AEAD only, or TLS 1.3.
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256"
)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.load_cert_chain(cert, key)
    return context


def main() -> None:
    try:
        settings = Settings.from_env(os.environ, hostname=socket.gethostname())
    except SettingsError as err:
        print(err, file=sys.stderr)
        sys.exit(2)
    logs.configure(settings.log_level, quiet=("aiohttp.web",))
    context = None
    if settings.tls_cert and settings.tls_key:
        context = tls_context(settings.tls_cert, settings.tls_key)
    web.run_app(
        init_app(settings),
        host=settings.host,
        port=settings.port,
        ssl_context=context,
        shutdown_timeout=5.0,
        access_log=None,
        print=None,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()
