"""Discovery: probes find engines, offer only new ones, never open a stream."""

from __future__ import annotations

from datetime import timedelta

from homeassistant.config_entries import SOURCE_HASSIO, SOURCE_IGNORE
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.acestream_proxy.const import DOMAIN
from custom_components.acestream_proxy.discovery import async_discover
from tests.simulator import EngineSimulator


def _flows(hass: HomeAssistant) -> list[dict]:
    return [
        flow
        for flow in hass.config_entries.flow.async_progress()
        if flow["handler"] == DOMAIN
    ]


async def test_discovery_offers_new_engines_only(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, engine_sim: EngineSimulator
) -> None:
    """Two simulators, one configured: one flow, confirmed into an entry."""
    async with EngineSimulator() as other:
        found = await async_discover(
            hass,
            [
                ("127.0.0.1", engine_sim.port),
                ("127.0.0.1", other.port),
                ("127.0.0.1", 1),
            ],
        )
        await hass.async_block_till_done(wait_background_tasks=True)
        assert found == [("127.0.0.1", other.port)]
        [flow] = _flows(hass)
        assert flow["context"]["source"] == "integration_discovery"
        assert flow["step_id"] == "discovery_confirm"
        assert flow["context"]["title_placeholders"] == {
            "host": "127.0.0.1",
            "port": str(other.port),
        }
        # Asking again does not offer it twice.
        await async_discover(hass, [("127.0.0.1", other.port)])
        await hass.async_block_till_done(wait_background_tasks=True)
        assert len(_flows(hass)) == 1

        result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
        await hass.async_block_till_done(wait_background_tasks=True)
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"] == {CONF_HOST: "127.0.0.1", CONF_PORT: other.port}
        for sim in (engine_sim, other):
            assert sim.counters.getstream_calls == 0
        entry = hass.config_entries.async_get_entry(result["result"].entry_id)
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_ignored_engine_is_not_offered_again(
    hass: HomeAssistant, engine_sim: EngineSimulator
) -> None:
    """An ignored discovery stays ignored."""
    await async_discover(hass, [("127.0.0.1", engine_sim.port)])
    await hass.async_block_till_done(wait_background_tasks=True)
    [flow] = _flows(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_IGNORE},
        data={"unique_id": f"127.0.0.1:{engine_sim.port}", "title": "x"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # Ignoring ends the offered flow too.
    assert flow["flow_id"] not in {f["flow_id"] for f in _flows(hass)}
    assert await async_discover(hass, [("127.0.0.1", engine_sim.port)]) == []
    await hass.async_block_till_done(wait_background_tasks=True)
    assert _flows(hass) == []


async def test_discovered_engine_gone_before_confirm(
    hass: HomeAssistant, engine_sim: EngineSimulator
) -> None:
    """Confirming an engine that stopped answering shows cannot_connect."""
    await async_discover(hass, [("127.0.0.1", engine_sim.port)])
    await hass.async_block_till_done(wait_background_tasks=True)
    [flow] = _flows(hass)
    await engine_sim.stop()
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}
    hass.config_entries.flow.async_abort(flow["flow_id"])


async def test_supervisor_discovery(
    hass: HomeAssistant, engine_sim: EngineSimulator
) -> None:
    """An add-on announcing itself through the Supervisor gets a confirm step."""
    info = HassioServiceInfo(
        config={CONF_HOST: "127.0.0.1", CONF_PORT: engine_sim.port},
        name="AceStream engine",
        slug="acestream",
        uuid="1234",
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=info
    )
    assert result["step_id"] == "discovery_confirm"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    await hass.async_block_till_done(wait_background_tasks=True)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # Announced again: already configured.
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=info
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_discover_action(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The action probes the hosts it is given and says what it found."""
    async with EngineSimulator() as other:
        response = await hass.services.async_call(
            DOMAIN,
            "discover",
            {"hosts": [f"127.0.0.1:{other.port}", "[::1]:1", "localhost"]},
            blocking=True,
            return_response=True,
        )
        assert response == {"found": [f"127.0.0.1:{other.port}"]}
        await hass.async_block_till_done(wait_background_tasks=True)
        for flow in _flows(hass):
            hass.config_entries.flow.async_abort(flow["flow_id"])


async def test_supervisor_addon_host_names(
    hass: HomeAssistant, engine_sim: EngineSimulator
) -> None:
    """Under the Supervisor the usual add-on names and the installed AceStream
    add-ons' host names are probed too; without it, none of them. While the
    Supervisor's data loads (None before 2026.8, HassioNotReadyError since), the
    usual names are probed and nothing breaks."""
    from homeassistant.components.hassio.const import DATA_ADDONS_INFO

    from custom_components.acestream_proxy import discovery

    assert discovery._addon_hosts(hass) == []
    assert not discovery.supervisor_loading(hass)
    hass.config.components.add("hassio")
    assert DATA_ADDONS_INFO not in hass.data
    assert discovery.supervisor_loading(hass)
    assert discovery._addon_hosts(hass) == list(discovery.ADDON_HOSTS)
    found = await discovery.async_find_engines(hass, [("127.0.0.1", engine_sim.port)])
    assert [(e.host, e.port) for e in found] == [("127.0.0.1", engine_sim.port)]

    # What the Supervisor integration stores once loaded (details of each add-on
    # are None until fetched, on every release).
    hass.data[DATA_ADDONS_INFO] = dict.fromkeys(
        ("a0d7b954_acestream_engine", "core_mosquitto", "local_acestream")
    )
    assert not discovery.supervisor_loading(hass)
    assert discovery._addon_hosts(hass) == [
        "acestream",
        "acestream-engine",
        "local-acestream",
        "a0d7b954-acestream-engine",
    ]
    # Names that do not resolve here are simply not found; the others still are.
    found = await discovery.async_find_engines(hass, [("127.0.0.1", engine_sim.port)])
    assert [(e.host, e.port) for e in found] == [("127.0.0.1", engine_sim.port)]


async def test_periodic_probe_retries_while_supervisor_loads(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first probe, made while the Supervisor's data loads, is repeated a
    minute later until the installed add-ons are known; then only the regular
    interval probes."""
    from homeassistant.components.hassio.const import DATA_ADDONS_INFO

    from custom_components.acestream_proxy import discovery

    async with EngineSimulator() as other:
        # This machine's engine stands in for every probe: each probe is one
        # version call on it.
        monkeypatch.setattr(discovery, "ENGINE_PORT", other.port)
        hass.config.components.add("hassio")

        start = dt_util.utcnow()
        calls = []
        for minutes in range(1, 7):
            if minutes == 4:
                hass.data[DATA_ADDONS_INFO] = {}
            async_fire_time_changed(hass, start + timedelta(minutes=minutes))
            await hass.async_block_till_done(wait_background_tasks=True)
            calls.append(other.counters.version_calls)
        # Three probes while loading, and the one that saw the data come; then
        # none until the regular interval.
        assert 0 < calls[0] < calls[1] < calls[2] < calls[3]
        assert calls[5] == calls[4] == calls[3]
        for flow in _flows(hass):
            hass.config_entries.flow.async_abort(flow["flow_id"])
