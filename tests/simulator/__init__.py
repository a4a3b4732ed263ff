"""AceStream engine simulator for tests and ``make demo`` (aiohttp + stdlib only)."""

from .engine import VERSION_MODES, EngineSimulator, SimCounters, SimReader, SimSession
from .ts import DEFAULT_FIXTURE, TsFixture, load_fixture

__all__ = [
    "DEFAULT_FIXTURE",
    "VERSION_MODES",
    "EngineSimulator",
    "SimCounters",
    "SimReader",
    "SimSession",
    "TsFixture",
    "load_fixture",
]
