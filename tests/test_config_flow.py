"""Config, reconfigure and options flows against the real engine simulator."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import (
    SOURCE_IGNORE,
    SOURCE_USER,
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
)
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.acestream_proxy import discovery
from custom_components.acestream_proxy.const import (
    CONF_HLS_SEGMENT,
    CONF_LINGER,
    CONF_MAX_BROADCASTS,
    CONF_MAX_VIEWERS,
    CONF_REPLAY_WINDOW,
    DOMAIN,
)
from tests.simulator import EngineSimulator


async def _start_user_flow(hass: HomeAssistant) -> str:
    """No engine answers where discovery looks: straight to the address form."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "manual"
    assert result["errors"] == {}
    return result["flow_id"]


async def test_user_flow_creates_entry(
    hass: HomeAssistant, engine_sim: EngineSimulator
) -> None:
    """A reachable engine is added with its address as data."""
    flow_id = await _start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_HOST: " 127.0.0.1 ", CONF_PORT: engine_sim.port}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_HOST: "127.0.0.1", CONF_PORT: engine_sim.port}
    assert result["title"] == f"AceStream engine 127.0.0.1:{engine_sim.port}"
    assert engine_sim.counters.version_calls >= 1
    # Validation never opens a stream session.
    assert engine_sim.counters.getstream_calls == 0


@pytest.mark.parametrize("mode", ["error_json", "html500", "empty", "wrong_type"])
async def test_user_flow_engine_answers_garbage_then_recovers(
    hass: HomeAssistant, engine_sim: EngineSimulator, mode: str
) -> None:
    """Each kind of bad engine answer is cannot_connect; fixing it creates the entry."""
    engine_sim.version_mode = mode
    flow_id = await _start_user_flow(hass)
    user_input = {CONF_HOST: "127.0.0.1", CONF_PORT: engine_sim.port}
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}

    engine_sim.version_mode = "ok"
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_refused(
    hass: HomeAssistant, engine_sim: EngineSimulator
) -> None:
    """Nothing listening: cannot_connect."""
    port = engine_sim.port
    await engine_sim.stop()
    flow_id = await _start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_HOST: "127.0.0.1", CONF_PORT: port}
    )
    assert result["errors"] == {"base": "cannot_connect"}


async def test_user_flow_invalid_host(
    hass: HomeAssistant, engine_sim: EngineSimulator
) -> None:
    """A URL instead of a host is rejected before anything is sent."""
    flow_id = await _start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_HOST: "http://127.0.0.1/ace", CONF_PORT: engine_sim.port}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_HOST: "invalid_host"}
    assert engine_sim.counters.version_calls == 0


async def test_user_flow_unknown_error(
    hass: HomeAssistant, engine_sim: EngineSimulator
) -> None:
    """A bug in validation shows 'unknown' and is logged, then the flow recovers."""
    flow_id = await _start_user_flow(hass)
    user_input = {CONF_HOST: "127.0.0.1", CONF_PORT: engine_sim.port}
    with patch(
        "custom_components.acestream_proxy.flows.common.EngineClient.get_version",
        side_effect=RuntimeError("boom"),
    ):
        result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    assert result["errors"] == {"base": "unknown"}
    result = await hass.config_entries.flow.async_configure(flow_id, user_input)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_flow_already_configured(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, engine_sim: EngineSimulator
) -> None:
    """The same host and port cannot be added twice."""
    flow_id = await _start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_HOST: "127.0.0.1", CONF_PORT: engine_sim.port}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


def _reload_in_flow_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Home Assistant 2026.12 does to a flow that reloads an entry with an
    update listener (2026.6 to 2026.11 report it): refuse it."""

    def refused(flow: ConfigFlow, entry: ConfigEntry, **kwargs: Any) -> None:
        if entry.update_listeners:
            raise ValueError("Cannot update and reload entry with update listeners")
        raise AssertionError("reconfigure reloads by the update listener or itself")

    monkeypatch.setattr(ConfigFlow, "async_update_reload_and_abort", refused)


async def test_reconfigure(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Reconfigure validates the new address, then updates the entry, which its
    update listener reloads onto the new engine (the form 2026.12 requires)."""
    _reload_in_flow_refused(monkeypatch)
    other = EngineSimulator()
    await other.start()
    try:
        result = await loaded_entry.start_reconfigure_flow(hass)
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "reconfigure"

        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: "bad host!", CONF_PORT: other.port}
        )
        assert result["errors"] == {CONF_HOST: "invalid_host"}

        other.version_mode = "html500"
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: other.port}
        )
        assert result["errors"] == {"base": "cannot_connect"}

        other.version_mode = "ok"
        polled = other.counters.version_calls
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: " 127.0.0.1 ", CONF_PORT: other.port}
        )
        await hass.async_block_till_done()
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        # Ours, not Home Assistant's generic text (2026.10+ for its own helpers).
        assert result.get("translation_domain") in (None, DOMAIN)
        assert loaded_entry.data == {CONF_HOST: "127.0.0.1", CONF_PORT: other.port}
        assert loaded_entry.title == f"AceStream engine 127.0.0.1:{other.port}"
        assert loaded_entry.unique_id == f"127.0.0.1:{other.port}"
        # Reloaded onto the new engine: its first refresh asked it.
        assert loaded_entry.state is ConfigEntryState.LOADED
        assert loaded_entry.runtime_data.client.port == other.port
        assert other.counters.version_calls > polled + 1
        assert "update listener" not in caplog.text
    finally:
        assert await hass.config_entries.async_unload(loaded_entry.entry_id)
        await other.stop()


async def test_reconfigure_entry_that_cannot_set_up(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An entry whose engine moved retries its setup on the old address: the new
    address reloads it from the flow (it has no update listener yet)."""
    _reload_in_flow_refused(monkeypatch)
    config_entry.add_to_hass(hass)
    port = engine_sim.port
    await engine_sim.stop()
    assert not await hass.config_entries.async_setup(config_entry.entry_id)
    assert config_entry.state is ConfigEntryState.SETUP_RETRY
    async with EngineSimulator() as moved:
        result = await config_entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: moved.port}
        )
        await hass.async_block_till_done()
        assert result["reason"] == "reconfigure_successful"
        assert config_entry.state is ConfigEntryState.LOADED
        assert config_entry.runtime_data.client.port == moved.port != port
        assert await hass.config_entries.async_unload(config_entry.entry_id)


async def test_reconfigure_to_existing_engine_aborts(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, engine_sim: EngineSimulator
) -> None:
    """Moving an entry onto another entry's engine is refused."""
    second = MockConfigEntry(
        domain=DOMAIN, data={CONF_HOST: "127.0.0.1", CONF_PORT: 1}, title="x"
    )
    second.add_to_hass(hass)
    result = await second.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: engine_sim.port}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_options_flow(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """Options show defaults, store new values and reject out-of-range ones."""
    result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"

    with pytest.raises(InvalidData):
        await hass.config_entries.options.async_configure(
            result["flow_id"],
            {
                CONF_LINGER: -1,
                CONF_REPLAY_WINDOW: 10,
                CONF_MAX_VIEWERS: 5,
                CONF_MAX_BROADCASTS: 2,
                CONF_HLS_SEGMENT: 3,
            },
        )

    new = {
        CONF_LINGER: 5,
        CONF_REPLAY_WINDOW: 12,
        CONF_MAX_VIEWERS: 5,
        CONF_MAX_BROADCASTS: 2,
        CONF_HLS_SEGMENT: 2,
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], new)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert loaded_entry.options == new

    # The form shows the stored values next time.
    result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    schema = result["data_schema"].schema
    defaults = {str(key): key.default() for key in schema}
    assert defaults == new


async def test_options_allow_thousands_of_viewers(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The viewer limit goes up to 5,000 per broadcast (2,000 are benchmarked)."""
    values = {
        CONF_LINGER: 30,
        CONF_REPLAY_WINDOW: 10,
        CONF_MAX_BROADCASTS: 10,
        CONF_HLS_SEGMENT: 3,
    }
    result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    with pytest.raises(InvalidData):
        await hass.config_entries.options.async_configure(
            result["flow_id"], {**values, CONF_MAX_VIEWERS: 5001}
        )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**values, CONF_MAX_VIEWERS: 2000}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert loaded_entry.options[CONF_MAX_VIEWERS] == 2000


def _offered(result: dict) -> list[str]:
    """Values of the user step's engine selector."""
    [key] = result["data_schema"].schema
    return [o["value"] for o in result["data_schema"].schema[key].config["options"]]


@pytest.fixture
def probe_the_simulator(
    monkeypatch: pytest.MonkeyPatch, engine_sim: EngineSimulator
) -> EngineSimulator:
    """The simulator listens where discovery looks for this machine's engine."""
    monkeypatch.setattr(discovery, "ENGINE_PORT", engine_sim.port)
    return engine_sim


async def test_fresh_install_offers_the_engine_found_here(
    hass: HomeAssistant, probe_the_simulator: EngineSimulator
) -> None:
    """No entry yet: the user step finds this machine's engine and adds it."""
    sim = probe_the_simulator
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    # 127.0.0.1 and localhost reach the same engine: offered once.
    assert _offered(result) == [f"127.0.0.1:{sim.port}", "manual"]
    [key] = result["data_schema"].schema
    labels = [o["label"] for o in result["data_schema"].schema[key].config["options"]]
    assert labels[0] == f"127.0.0.1:{sim.port} (3.2.12)"
    assert sim.counters.version_calls >= 1
    assert sim.counters.getstream_calls == 0

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"engine": f"127.0.0.1:{sim.port}"}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {CONF_HOST: "127.0.0.1", CONF_PORT: sim.port}
    assert sim.counters.getstream_calls == 0
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_found_engines_leave_manual_entry_open(
    hass: HomeAssistant, probe_the_simulator: EngineSimulator
) -> None:
    """'Enter manually' leads to the address form, which keeps its validation."""
    async with EngineSimulator() as other:
        result = await hass.config_entries.flow.async_init(
            DOMAIN, context={"source": SOURCE_USER}
        )
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {"engine": "manual"}
        )
        assert result["step_id"] == "manual"
        assert result["errors"] == {}
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: "not a host", CONF_PORT: other.port}
        )
        assert result["errors"] == {CONF_HOST: "invalid_host"}
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: other.port}
        )
        await hass.async_block_till_done()
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"] == {CONF_HOST: "127.0.0.1", CONF_PORT: other.port}
        assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_found_engine_gone_before_it_is_picked(
    hass: HomeAssistant, probe_the_simulator: EngineSimulator
) -> None:
    """The chosen engine is checked again: gone is cannot_connect on the same form."""
    sim = probe_the_simulator
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    await sim.stop()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"engine": f"127.0.0.1:{sim.port}"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": "cannot_connect"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"engine": "manual"}
    )
    assert result["step_id"] == "manual"
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_configured_engine_is_not_offered(
    hass: HomeAssistant, probe_the_simulator: EngineSimulator, loaded_entry
) -> None:
    """Once the engine here is an entry, the user step goes to the address form."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert result["step_id"] == "manual"


async def test_picking_an_engine_another_flow_is_adding(
    hass: HomeAssistant, probe_the_simulator: EngineSimulator
) -> None:
    """A discovery flow already offers this engine: already_in_progress."""
    sim = probe_the_simulator
    assert await discovery.async_discover(hass) == [("127.0.0.1", sim.port)]
    await hass.async_block_till_done(wait_background_tasks=True)
    [offered] = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    # Still offered: only configured engines are left out of the user step.
    assert _offered(result)[0] == f"127.0.0.1:{sim.port}"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"engine": f"127.0.0.1:{sim.port}"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_in_progress"
    hass.config_entries.flow.async_abort(offered["flow_id"])


async def test_ignored_engine_can_still_be_added_by_hand(
    hass: HomeAssistant, probe_the_simulator: EngineSimulator
) -> None:
    """Ignoring stops the periodic offer, not the user's own choice."""
    sim = probe_the_simulator
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_IGNORE},
        data={"unique_id": f"127.0.0.1:{sim.port}", "title": "ignored"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert await discovery.async_discover(hass) == []
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert _offered(result) == [f"127.0.0.1:{sim.port}", "manual"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"engine": f"127.0.0.1:{sim.port}"}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    [entry] = hass.config_entries.async_entries(DOMAIN, include_ignore=True)
    assert entry.source == SOURCE_USER
    assert await hass.config_entries.async_unload(entry.entry_id)
