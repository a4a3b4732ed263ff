"""What a broadcast is given (tunables, the engine it reads) and what it counts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
import time
from typing import TYPE_CHECKING, Any, Final, Protocol

import aiohttp

from ..engine import ContentRef, StreamSession

if TYPE_CHECKING:
    from . import Broadcaster
    from .lifecycle import BroadcastEvent

# "Not MPEG-TS": this many bytes in a row without three packets in sync. At the
# slowest live bitrates (1 Mbit/s) that is about 8 s of data; a real TS stream
# never loses sync for that long, a Matroska or MP4 file never finds it.
NOT_TS_BYTES: Final = 1024 * 1024


class EngineApi(Protocol):
    """The part of EngineClient the broadcaster uses."""

    async def start_session(
        self, content: ContentRef, *, pid: str | None = None, start_timeout: float = ...
    ) -> StreamSession:
        """Open a session."""

    async def stop_session(self, session: StreamSession) -> bool:
        """Stop a session."""

    async def open_stream(
        self, session: StreamSession, *, connect_timeout: float, read_timeout: float
    ) -> aiohttp.ClientResponse:
        """Open the progressive reader."""


@dataclass(frozen=True, slots=True)
class BroadcastConfig:
    """Tunables of one broadcast."""

    linger: float = 30.0
    replay_window: float = 10.0
    max_ring_bytes: int = 64 * 1024 * 1024
    max_viewers: int = 50
    write_timeout: float = 10.0
    write_batch: int = 256 * 1024
    # The engine's answer to getstream, then its cold start (first byte).
    getstream_timeout: float = 30.0
    start_timeout: float = 60.0
    stall_timeout: float = 20.0  # no data mid-stream
    connect_timeout: float = 10.0
    keepalive_interval: float = 1.0
    retry_give_up: float = 120.0  # an outage this long: the broadcast fails
    retry_backoff_max: float = 10.0
    healthy_after: float = 5.0  # data after a reopen's first keyframe: outage over
    rap_fallback_bytes: int = 4 * 1024 * 1024  # no keyframe flag seen: join anywhere
    not_ts_bytes: int = NOT_TS_BYTES  # this much without MPEG-TS sync: not MPEG-TS


@dataclass(slots=True)
class BroadcastStats:
    """Counters kept by the producer and the viewers; read by the HA layer."""

    bytes_in: int = 0
    bytes_out: int = 0
    chunks: int = 0
    viewers_total: int = 0
    viewers_dropped: int = 0
    viewers_skipped: int = 0
    upstream_restarts: int = 0
    resyncs: int = 0
    discarded_bytes: int = 0
    started_at: float = field(default_factory=time.time)
    first_data_at: float | None = None


type Spawn = Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]
type Listener = Callable[["Broadcaster", "BroadcastEvent"], None]
type Failover = Callable[["Broadcaster"], tuple[str, EngineApi] | None]
