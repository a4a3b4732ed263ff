"""The producer: reads the engine, reopens and fails over, detects non-MPEG-TS.

One task per broadcast opens the engine's reader and hands every read to the
ingest (:mod:`.ingest`); when a read ends, the life cycle decides between a
reopen, a failover and giving up. Requests from outside (a superseding session,
a move off an engine leaving the pool) interrupt a read or a back-off. Its work
per chunk does not depend on the number of viewers, and it holds no lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
import logging
import time
from typing import Any

import aiohttp

from ..engine import ContentRef, EngineConnectionError, EngineError, StreamSession
from .config import EngineApi, Failover
from .ingest import NOT_TS_REASON, Ingest, _NotMpegTsError
from .lifecycle import BroadcastEvent

_LOGGER = logging.getLogger(__package__)


class Producer(Ingest):
    """The reading task of a broadcast and the engine sessions it reads."""

    def _init_producer(
        self,
        client: EngineApi,
        session: StreamSession,
        content: ContentRef,
        engine_id: str,
        failover: Failover | None,
    ) -> None:
        self.client = client
        self.infohash = session.infohash
        self.content = content
        # Which engine serves it, and how to find another one when it dies.
        self.engine_id = engine_id
        self.previous_engine_id: str | None = None
        self._failover = failover
        self.session: StreamSession | None = session
        self._init_ingest()
        self._task: asyncio.Task[None] | None = None
        # Requests to the producer, taken at its next step: read a session the
        # engine opened for us (adopt), or continue on another engine (move_to).
        self._adopted: StreamSession | None = None
        self._move: tuple[str, EngineApi] | None = None
        # Sessions to stop, with the client of their engine (kept until stopped).
        self._stale: list[tuple[EngineApi, StreamSession]] = []
        self._kick = asyncio.Event()  # cuts a back-off short
        self._reader: aiohttp.ClientResponse | None = None

    def adopt(self, session: StreamSession) -> None:
        """Take over a session the engine opened for this infohash.

        A new getstream for the same infohash (e.g. a content id naming this
        broadcast) supersedes our session on the engine; reading the new one keeps
        exactly one engine session per broadcast.
        """
        self._adopted = session
        self._interrupt()

    def move_to(self, engine_id: str, client: EngineApi) -> None:
        """Continue on another engine: the current one leaves the pool.

        Viewers stay; the producer stops the session on the old engine and opens
        one on the new engine (a failover).
        """
        if not self.closed:
            self._move = (engine_id, client)
            self._interrupt()

    def _interrupt(self) -> None:
        """Make the producer look at its requests now (end a read or a back-off)."""
        if self._reader is not None:
            self._reader.close()
        self._kick.set()

    async def _switch_engine(self, engine_id: str, client: EngineApi) -> None:
        """Leave the current engine for another; its sessions there are stopped.

        The switch is told before any await, so the owner never counts the
        broadcast on the engine it leaves (an unload racing a failover).
        """
        for session in (self.session, self._adopted):
            if session is not None:
                # Opened on the engine we leave: it must not keep downloading.
                self._stale.append((self.client, session))
        self.session = self._adopted = None
        self.previous_engine_id = self.engine_id
        self.engine_id, self.client = engine_id, client
        _LOGGER.warning(
            "Broadcast %s moves to another engine; viewers stay connected", self.name
        )
        self._emit(BroadcastEvent.FAILOVER)
        await self._stop_session()

    async def _stop_session(self) -> None:
        """Stop the current engine session and any left behind by a switch."""
        if self.session is not None:
            self._stale.append((self.client, self.session))
            self.session = None
        stale = self._stale
        while stale:
            client, session = stale[0]
            try:
                await client.stop_session(session)
            except EngineError as err:
                _LOGGER.debug(
                    "Stopping the engine session of %s failed: %s", self.name, err
                )
            # Forgotten only once stopped: a close that cancels this stop halfway
            # stops the session itself.
            stale.pop(0)

    # -- reading -----------------------------------------------------------------

    async def _run(self) -> None:
        """The producer: reads until the broadcast closes; ends only by a close."""
        try:
            await self._produce()
        except asyncio.CancelledError:
            if not self.closed:
                # Cancelled by someone else than our own close: never leave the
                # broadcast open without a producer.
                _LOGGER.debug("Broadcast %s producer cancelled", self.name)
                self.close_soon()
            raise
        except Exception:
            _LOGGER.exception("Broadcast %s producer crashed", self.name)
            self._fail("internal error")

    async def _produce(self) -> None:
        while True:
            error, unreachable, fatal = await self._attempt()
            if self.closed:
                return
            if self._move is not None:
                engine_id, client = self._move
                self._move = None
                if engine_id != self.engine_id:
                    await self._switch_engine(engine_id, client)
                outage = self._open_outage()
                outage.engine_failures = 0
                outage.failovers += 1
                self._reopened()
                continue
            if self._adopted is not None:
                # Superseded on purpose: read the new session, never stop the old
                # one (stopping it could end the new reader of the same infohash).
                self.session, self._adopted = self._adopted, None
                self._reopened()
                continue
            if fatal:
                self._fail(error)
                return
            if not await self._read_failed(error, unreachable):
                return

    async def _interruptible(
        self, opening: Coroutine[Any, Any, aiohttp.ClientResponse]
    ) -> aiohttp.ClientResponse | None:
        """Open a reader unless a move or an adopted session comes first (None).

        An engine answers the reader only after its cold start (10-25 s): a move
        off an unloading engine must not wait for it.
        """
        task = asyncio.ensure_future(opening)
        self._kick.clear()  # requests are in _move / _adopted, checked here
        kick = asyncio.ensure_future(self._kick.wait())
        try:
            if self._move is None and self._adopted is None:
                await asyncio.wait((task, kick), return_when=asyncio.FIRST_COMPLETED)
        finally:
            kick.cancel()
            if not task.done():
                task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None if task.cancelled() else task.result()

    async def _attempt(self) -> tuple[str, bool, bool]:
        """Open (if needed) and read one session: (why it ended, unreachable, fatal)."""
        if self._move is not None:
            return "moving to another engine", False, False
        try:
            if self.session is None:
                # Reopen by what the broadcast was opened with: an engine that
                # restarted, or another one after a failover, refuses a bare
                # infohash until it has loaded the content id's descriptor.
                session = self._adopted or await self.client.start_session(
                    self.content, start_timeout=self.config.getstream_timeout
                )
                self._adopted = None
                self.session = session
            aligned = self._aligned_bytes
            bytes_in = self.stats.bytes_in
            error = await self._pump(self.session)
        except _NotMpegTsError:
            return NOT_TS_REASON, False, True
        except (EngineError, aiohttp.ClientError, TimeoutError) as err:
            unreachable = isinstance(
                err, EngineConnectionError | aiohttp.ClientConnectorError
            )
            error = str(err) or type(err).__name__
            if unreachable or self.session is None:
                return error, unreachable, False
        if self.stats.bytes_in != bytes_in and self._aligned_bytes == aligned:
            # Bytes came, none of them MPEG-TS: say so, however the read ended (a
            # short answer repeated on every reopen fails with this reason).
            return NOT_TS_REASON, False, False
        return error, False, False

    async def _pump(self, session: StreamSession) -> str:
        """Copy one engine reader into the ring until it ends; say why it ended."""
        cfg = self.config
        resp = await self._interruptible(
            self.client.open_stream(
                session,
                connect_timeout=cfg.connect_timeout,
                read_timeout=cfg.start_timeout,
            )
        )
        if resp is None:
            return "interrupted"
        self._reader = resp
        seen = False
        try:
            if self._move is not None or self._adopted is not None:
                return "interrupted"
            content = resp.content
            while True:
                async with asyncio.timeout(
                    cfg.stall_timeout if seen else cfg.start_timeout
                ):
                    data = await content.readany()
                if not data:
                    break
                seen = True
                self._feed(data)
        finally:
            self._reader = None
            resp.close()
            if self._pending:
                # What this session delivered still reaches viewers.
                self._flush(time.monotonic())
        return "the engine ended the stream"
