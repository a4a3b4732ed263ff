"""AceStream engine simulator for tests and ``make demo`` (aiohttp + stdlib only)."""

from .engine import (
    FAULT_KINDS,
    VERSION_MODES,
    EngineSimulator,
    Fault,
    SessionLedger,
    SimCounters,
    SimReader,
    SimSession,
    parse_faults,
)
from .ts import DEFAULT_FIXTURE, TsFixture, load_fixture

__all__ = [
    "DEFAULT_FIXTURE",
    "FAULT_KINDS",
    "VERSION_MODES",
    "EngineSimulator",
    "Fault",
    "SessionLedger",
    "SimCounters",
    "SimReader",
    "SimSession",
    "TsFixture",
    "load_fixture",
    "parse_faults",
]
