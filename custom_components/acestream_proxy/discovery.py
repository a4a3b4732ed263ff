"""Engine discovery: probe likely places, offer the engines not configured yet.

Probes are version calls only (never a stream session), in parallel, with short
timeouts. Engines do not announce themselves on the network, so this looks where
they usually run: this machine, the Home Assistant host's own addresses, and
add-on host names when the Supervisor is present; plus candidates a user gives
to the ``acestream_proxy.discover`` action.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

from homeassistant.components import network
from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY
from homeassistant.const import CONF_HOST, CONF_PORT, EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import discovery_flow
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import async_call_later, async_track_time_interval
from homeassistant.helpers.hassio import is_hassio

from .const import DEFAULT_PORT, DOMAIN, LOGGER
from .engine import EngineClient, EngineError

PROBE_TIMEOUT: Final = 2.0
DISCOVERY_INTERVAL: Final = timedelta(minutes=30)
DISCOVERY_DELAY: Final = timedelta(minutes=1)
LOCAL_HOSTS: Final = ("127.0.0.1", "localhost")
# Host names AceStream engine add-ons get on the Supervisor network.
ADDON_HOSTS: Final = ("acestream", "acestream-engine", "local-acestream")


def engine_key(host: str, port: int) -> str:
    """The identity of an engine: its address (the engine has no id of its own)."""
    return f"{host.lower()}:{port}"


async def _local_addresses(hass: HomeAssistant) -> set[str]:
    addresses: set[str] = set()
    try:
        adapters = await network.async_get_adapters(hass)
    except Exception as err:
        LOGGER.debug("No network adapters for discovery: %s", err)
        return addresses
    for adapter in adapters:
        if adapter["enabled"]:
            addresses.update(str(ip["address"]) for ip in adapter["ipv4"])
    return addresses


async def _probe(client: EngineClient) -> bool:
    try:
        await client.get_version()
    except EngineError:
        return False
    except Exception as err:
        LOGGER.debug("Probing %s failed: %s", client.base_url, err)
        return False
    return True


@callback
def async_setup_discovery(hass: HomeAssistant) -> None:
    """Probe a minute after start, then every DISCOVERY_INTERVAL."""

    async def run(_now: datetime | None = None) -> None:
        await async_discover(hass)

    cancel_first = async_call_later(hass, DISCOVERY_DELAY, run)
    cancel_interval = async_track_time_interval(
        hass, run, DISCOVERY_INTERVAL, name=f"{DOMAIN} discovery"
    )

    @callback
    def stop(_event: Event) -> None:
        cancel_first()
        cancel_interval()

    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, stop)


async def async_discover(
    hass: HomeAssistant, extra: Iterable[tuple[str, int]] = ()
) -> list[tuple[str, int]]:
    """Probe the candidates; start a discovery flow for each new engine found."""
    local = [*LOCAL_HOSTS, *sorted(await _local_addresses(hass))]
    remote = list(ADDON_HOSTS) if is_hassio(hass) else []
    known = {
        key
        for entry in hass.config_entries.async_entries(DOMAIN, include_ignore=True)
        for key in (
            entry.unique_id,
            engine_key(entry.data[CONF_HOST], entry.data[CONF_PORT])
            if CONF_HOST in entry.data
            else None,
        )
        if key
    }
    # This machine's addresses all reach the same engine: offer it once, and not
    # at all if it is already configured under any of them.
    local_known = any(engine_key(host, DEFAULT_PORT) in known for host in local)
    candidates: list[tuple[str, int]] = []
    if not local_known:
        candidates += [(host, DEFAULT_PORT) for host in local]
    candidates += [(host, DEFAULT_PORT) for host in remote]
    candidates += [(host, port) for host, port in extra]
    candidates = [c for c in dict.fromkeys(candidates) if engine_key(*c) not in known]
    session = async_get_clientsession(hass)
    clients = [
        EngineClient(session, host, port, request_timeout=PROBE_TIMEOUT)
        for host, port in candidates
    ]
    answers = await asyncio.gather(*(_probe(client) for client in clients))
    found: list[tuple[str, int]] = []
    local_offered = False
    for (host, port), answered in zip(candidates, answers, strict=True):
        if not answered:
            continue
        is_local = host in local and port == DEFAULT_PORT
        if is_local and local_offered:
            continue
        local_offered = local_offered or is_local
        found.append((host, port))
        discovery_flow.async_create_flow(
            hass,
            DOMAIN,
            context={"source": SOURCE_INTEGRATION_DISCOVERY},
            data={CONF_HOST: host, CONF_PORT: port},
        )
    return found
