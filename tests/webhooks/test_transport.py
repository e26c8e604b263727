"""The delivery client's transport: requests spread over several connection pools."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from interlink.webhooks.transport import ShardedTransport


class HeldTransport(httpx.AsyncBaseTransport):
    """Returns 200 once the test releases it, and counts the requests it got."""

    def __init__(self, release: asyncio.Event) -> None:
        self.release = release
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        await self.release.wait()
        return httpx.Response(200, content=b"ok")


async def test_requests_go_to_least_busy_pool() -> None:
    release = asyncio.Event()
    shards = [HeldTransport(release) for _ in range(3)]
    async with httpx.AsyncClient(transport=ShardedTransport(shards)) as client:
        pending = [asyncio.create_task(client.get("https://hooks.test/")) for _ in range(3)]
        for _ in range(1000):  # bounded: each pass lets the request tasks run once
            if sum(shard.requests for shard in shards) == 3:
                break
            await asyncio.sleep(0)
        release.set()
        responses = await asyncio.gather(*pending)

    assert [shard.requests for shard in shards] == [1, 1, 1]
    assert [response.status_code for response in responses] == [200, 200, 200]


async def test_closed_responses_free_their_pool() -> None:
    release = asyncio.Event()
    release.set()
    shards = [HeldTransport(release) for _ in range(2)]
    async with httpx.AsyncClient(transport=ShardedTransport(shards)) as client:
        for _ in range(4):
            response = await client.get("https://hooks.test/")
            assert response.status_code == 200

    assert [shard.requests for shard in shards] == [4, 0]


async def test_failed_request_frees_its_pool() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused by the test", request=request)

    transport = ShardedTransport([httpx.MockTransport(refuse), httpx.MockTransport(refuse)])
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            with pytest.raises(httpx.ConnectError):
                await client.get("https://hooks.test/")
    assert transport._in_flight == [0, 0]
