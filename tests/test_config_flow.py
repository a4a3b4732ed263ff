"""Config, reconfigure and options flows against the real engine simulator."""

from __future__ import annotations

from unittest.mock import patch

from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

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
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
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
        "custom_components.acestream_proxy.config_flow.EngineClient.get_version",
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


async def test_reconfigure(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, engine_sim: EngineSimulator
) -> None:
    """Reconfigure validates the new address, then updates and reloads the entry."""
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
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: other.port}
        )
        await hass.async_block_till_done()
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        assert loaded_entry.data == {CONF_HOST: "127.0.0.1", CONF_PORT: other.port}
        assert loaded_entry.title == f"AceStream engine 127.0.0.1:{other.port}"
    finally:
        assert await hass.config_entries.async_unload(loaded_entry.entry_id)
        await other.stop()


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
