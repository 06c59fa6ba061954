"""Entrypoints: ``sprechzimmer-media sfu`` and ``sprechzimmer-media turn-config --output PATH``.

The same commands run in the pod's containers and locally as plain processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Final

from aiohttp import web
from sprechzimmer.contract import logs

from .core.settings import Settings, SettingsError
from .core.turn import render_coturn_config

logger = logging.getLogger("sprechzimmer.media")

# aiortc and aioice log candidate addresses at debug/info: they keep only warnings.
QUIET_LOGGERS: Final = ("aiortc", "aioice")
# After the drain (``Call.drain`` ends it at the grace period), requests still open get this long
# to finish before the server closes them.
SHUTDOWN_SECONDS: Final = 1.0


async def serve(settings: Settings) -> None:
    """Run the SFU until SIGTERM/SIGINT, then drain: keep forwarding while anyone is still in
    the call, for at most ``grace_seconds``; then answer open event polls and stop."""
    from . import _aiortc_hooks as hooks
    from .app import CALL, init_app

    hooks.check_aiortc()
    hooks.bind_media_to_loopback()
    app = init_app(settings)
    call = app[CALL]

    def codec_entered(name: str) -> None:
        call.counters.codec_entries += 1
        logger.error("codec path entered", extra={"path": name})

    hooks.install_codec_tripwires(codec_entered)
    # The forwarding path allocates a few short-lived objects per packet but creates no cycles;
    # with the default thresholds the collector would run every few hundred packets and walk
    # aiortc's long-lived objects each time. Freeze what exists and collect rarely.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.control_host, settings.control_port)
    await site.start()
    logger.info("sfu listening", extra={"port": settings.control_port})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    # The listener stays open until the call has ended, so the final events reach open polls.
    await call.drain(settings.grace_seconds)
    await runner.cleanup()
    logger.info("stopped")


def write_turn_config(settings: Settings, output: Path) -> None:
    """Write coturn's configuration atomically; readable by the pod's group only (it holds the
    static secret)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=".turnserver.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(render_coturn_config(settings))
        os.chmod(tmp, 0o640)
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sprechzimmer-media")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("sfu", help="run the SFU (control API, health, metrics, media)")
    turn = commands.add_parser("turn-config", help="render coturn's configuration from env")
    turn.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    logs.configure(logging.INFO, quiet=QUIET_LOGGERS)
    try:
        settings = Settings.from_env(os.environ, need_control_token=args.command == "sfu")
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.command == "turn-config":
        write_turn_config(settings, args.output)
        logger.info("turn config written", extra={"path": str(args.output)})
        return 0
    import uvloop

    uvloop.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
