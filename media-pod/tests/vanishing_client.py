"""A participant in its own process, so a test can make it vanish (SIGKILL: no BYE, no DTLS close).

Usage: python -m tests.vanishing_client SFU_URL TURN_PORT NAME
Prints "connected" once media flows, then waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp

from .support import Client, Sfu, Turn


async def main(url: str, turn_port: int, name: str) -> None:
    async with aiohttp.ClientSession() as session:
        sfu = Sfu(url, None, None, session)  # type: ignore[arg-type]
        turn = Turn(turn_port, None)  # type: ignore[arg-type]
        client = Client(name, sfu, turn, seed=7)
        await client.join()
        await client.connected()
        print("connected", flush=True)
        forever: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await forever


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
