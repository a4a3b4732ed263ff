"""Shared fixtures: a real engine simulator on loopback and a loaded entry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

# Imported before the hass fixture puts phacc's testing_config on sys.path, so our
# custom_components package wins (otherwise: "Integration not found").
from custom_components.acestream_proxy import discovery
from custom_components.acestream_proxy.const import DOMAIN
from custom_components.acestream_proxy.stream.broadcast import lifecycle
from tests.deprecations import DeprecationGuard
from tests.lifecycle_table import TransitionRecorder, off_table, transitions
from tests.simulator import EngineSimulator

PHASE_TABLE = transitions(lifecycle.__doc__ or "")

# The Home Assistant-level setup built on ``loaded_entry``: a channel, a key, a
# playing broadcast...
pytest_plugins = ("tests.ha_fixtures",)


# Defined before the fixtures that bring in hass, so it is set up before Home
# Assistant starts and torn down after it stops: reports made while unloading count.
@pytest.fixture(autouse=True)
def deprecation_guard() -> Iterator[DeprecationGuard]:
    """Fail the test when Home Assistant reports our use of a deprecated API
    ("Detected that custom integration 'acestream_proxy' ...") or our code
    triggers a DeprecationWarning (see tests.deprecations)."""
    guard = DeprecationGuard()
    with guard.watching():
        yield guard
    guard.check()


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Load custom_components in every test."""


@pytest.fixture(autouse=True)
def probe_port_nothing_listens_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Discovery probes 6878 on this machine; other engines may run there, so tests
    aim it at port 1 (nothing listens) unless they point it at a simulator."""
    monkeypatch.setattr(discovery, "ENGINE_PORT", 1)


@pytest.fixture(autouse=True)
def phase_changes_follow_the_table() -> Iterator[TransitionRecorder]:
    """Every broadcast phase change a test makes must be a row of the state table
    (the docstring of stream/broadcast/lifecycle.py)."""
    recorder = TransitionRecorder()
    recorder.install()
    try:
        yield recorder
    finally:
        recorder.remove()
    assert not off_table(recorder.made, PHASE_TABLE), "phase changes off the table"


@pytest.fixture
def sim_strict() -> bool:
    """Whether ``engine_sim`` behaves like a real engine (see tests.simulator).

    Strict by default; unit tests of the engine client and the data plane override
    this with the kind mode, which is faster and starts every reader at byte 0.
    """
    return True


@pytest.fixture
async def engine_sim(
    socket_enabled: None, sim_strict: bool
) -> AsyncIterator[EngineSimulator]:
    """A running engine simulator with a short cold start and restart."""
    sim = EngineSimulator(
        cold_start=0.3, strict=sim_strict, restart_downtime=0.5 if sim_strict else 0
    )
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
def entry_options() -> dict[str, Any]:
    """Options of the test entry; tests override by parametrizing this name."""
    return {}


@pytest.fixture
def config_entry(
    engine_sim: EngineSimulator, entry_options: dict[str, Any]
) -> MockConfigEntry:
    """An entry pointing at the simulator."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"AceStream engine 127.0.0.1:{engine_sim.port}",
        data={CONF_HOST: "127.0.0.1", CONF_PORT: engine_sim.port},
        options=entry_options,
    )


@pytest.fixture
async def loaded_entry(
    hass: HomeAssistant, config_entry: MockConfigEntry
) -> MockConfigEntry:
    """The entry, set up."""
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    return config_entry
