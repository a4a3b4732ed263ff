"""Broadcasters on the data plane without Home Assistant: what the tests of the
broadcaster and of recordings build theirs with."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from custom_components.acestream_proxy.stream.broadcast import (
    BroadcastConfig,
    Broadcaster,
    BroadcastEvent,
)
from custom_components.acestream_proxy.stream.broadcast.config import Failover
from custom_components.acestream_proxy.stream.engine import ContentRef, EngineClient


class BroadcastHarness:
    """Builds broadcasters of ``content``, runs their tasks, records their events."""

    def __init__(self, client: EngineClient, content: ContentRef) -> None:
        self.client = client
        self.content = content
        self.events: list[BroadcastEvent] = []
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def open(
        self, failover: Failover | None = None, **config: Any
    ) -> Broadcaster:
        """A started broadcaster on a new engine session, with ``config``."""
        session = await self.client.start_session(self.content)
        broadcaster = Broadcaster(
            client=self.client,
            session=session,
            content=self.content,
            config=BroadcastConfig(**config),
            spawn=self.spawn,
            listener=lambda _b, event: self.events.append(event),
            failover=failover,
        )
        broadcaster.start()
        return broadcaster

    async def cancel_tasks(self) -> None:
        """Whatever a test left running ends."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
