"""The engine pool: the engine entries loaded now, and which one takes a broadcast.

An engine takes a new broadcast when its last health check passed and it has room
under its ``max_broadcasts`` option; of those, the least loaded one (broadcasts,
starts included, then viewers) is chosen. A failover chooses the same way, without
the engine the broadcast leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .const import (
    CONF_HLS_SEGMENT,
    CONF_LINGER,
    CONF_MAX_BROADCASTS,
    CONF_MAX_VIEWERS,
    CONF_REPLAY_WINDOW,
    DEFAULT_OPTIONS,
)
from .stream.broadcast import BroadcastConfig

if TYPE_CHECKING:
    from .data import AceStreamConfigEntry
    from .stream.broadcast import Broadcaster
    from .stream.engine import EngineClient

RETRY_AFTER_LIMIT = 30
RETRY_AFTER_UNREACHABLE = 15

# The load of an engine, by entry id: (broadcasts open or starting, viewers).
type Load = Callable[[str], tuple[int, int]]


class NoEngineError(Exception):
    """No engine entry is loaded."""


class CapacityError(Exception):
    """A limit is reached or no engine can take the broadcast now."""

    def __init__(self, message: str, retry_after: int = RETRY_AFTER_LIMIT) -> None:
        """Say what is full and when to retry."""
        super().__init__(message)
        self.retry_after = retry_after


def broadcast_config(entry: AceStreamConfigEntry) -> BroadcastConfig:
    """How the broadcasts an engine opens behave, from its options."""
    options = entry.options
    return BroadcastConfig(
        linger=_option(options, CONF_LINGER),
        replay_window=_option(options, CONF_REPLAY_WINDOW),
        max_viewers=int(_option(options, CONF_MAX_VIEWERS)),
    )


def hls_segment(options: Mapping[str, Any]) -> float:
    """The HLS target duration an engine's options ask for."""
    return _option(options, CONF_HLS_SEGMENT)


def _option(options: Mapping[str, Any], key: str) -> float:
    """An option's value, or its default when the entry predates it."""
    return float(options.get(key, DEFAULT_OPTIONS[key]))


@dataclass
class EnginePool:
    """The loaded engine entries, by entry id."""

    engines: dict[str, AceStreamConfigEntry] = field(default_factory=dict)

    def add(self, entry: AceStreamConfigEntry) -> None:
        """Make a loaded engine entry available for broadcasts."""
        self.engines[entry.entry_id] = entry

    def remove(self, entry_id: str) -> None:
        """Take an engine out: it gets no new broadcast and no failover."""
        self.engines.pop(entry_id, None)

    def select(self, load: Load, exclude: str | None = None) -> AceStreamConfigEntry:
        """The engine that takes a broadcast now.

        Raises NoEngineError, or CapacityError when none answers or has room.
        """
        if not self.engines:
            raise NoEngineError("no AceStream engine is configured and loaded")
        healthy = [
            entry
            for entry in self.engines.values()
            if entry.runtime_data.coordinator.last_update_success
            and entry.entry_id != exclude
        ]
        if not healthy:
            raise CapacityError(
                "no AceStream engine is reachable", RETRY_AFTER_UNREACHABLE
            )
        for entry in sorted(healthy, key=lambda entry: load(entry.entry_id)):
            limit = _option(entry.options, CONF_MAX_BROADCASTS)
            if load(entry.entry_id)[0] < limit:
                return entry
        raise CapacityError("the maximum number of concurrent broadcasts is reached")

    def failover_target(
        self, broadcaster: Broadcaster, load: Load
    ) -> tuple[str, EngineClient] | None:
        """Another healthy engine with room for the broadcast, if any."""
        try:
            entry = self.select(load, exclude=broadcaster.engine_id)
        except (NoEngineError, CapacityError):
            return None
        return entry.entry_id, entry.runtime_data.client
