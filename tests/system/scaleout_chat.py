#!/usr/bin/python3
"""tests/system/redis_client.py's chat for the scale-out test: the same
clients, batches, status and summary files, with each client counted by
HOST/INSTANCE (from its hello) instead of by instance number alone: behind
a front with two hosts, instance 0 of app1 and instance 0 of app2 are two
instances. Run with redis_client.py and streams_client.py beside it; the
arguments are redis_client.py's.
"""

import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import redis_client  # noqa: E402
import streams_client  # noqa: E402


async def open_ws(self):
    """redis_client.Chat.open_ws, keeping the host of the hello."""
    async with self.target.opening:
        ws = await redis_client.connect(
            f"wss://{self.target.host}/chat/{self.args.room}/ws?hello=1",
            ssl=self.target.tls,
            host=self.target.addr,
            port=self.target.port,
            server_hostname=self.target.host,
            open_timeout=streams_client.OPEN_TIMEOUT,
            ping_interval=None,
            close_timeout=streams_client.CLOSE_TIMEOUT,
            max_size=2**20,
        )
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))["hello"]
        return ws, f"{hello['host']}/{hello['instance']}"


redis_client.Chat.open_ws = open_ws

if __name__ == "__main__":
    redis_client.main()
