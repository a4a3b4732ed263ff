"""Engine discovery: probe likely places, offer the engines not configured yet.

Probes are version calls only (never a stream session), in parallel, with short
timeouts. Engines do not announce themselves on the network, so this looks where
they usually run: this machine, the Home Assistant host's own addresses, and
add-on host names when the Supervisor is present; plus candidates a user gives
to the ``acestream_proxy.discover`` action. The config flow's ``user`` step runs
the same probe itself (``async_setup`` only runs once an entry exists, so the
periodic probe can't find the first engine).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from homeassistant.components import network
from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY
from homeassistant.const import CONF_HOST, CONF_PORT, EVENT_HOMEASSISTANT_STOP
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.helpers import discovery_flow
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import async_call_later, async_track_time_interval
from homeassistant.helpers.hassio import is_hassio

from .compat import addon_slugs
from .const import DEFAULT_PORT, DOMAIN, LOGGER
from .stream.engine import EngineClient, EngineError, EngineVersion

PROBE_TIMEOUT: Final = 2.0
DISCOVERY_INTERVAL: Final = timedelta(minutes=30)
DISCOVERY_DELAY: Final = timedelta(minutes=1)
# Probes repeated while the Supervisor's data loads (it usually takes seconds).
SUPERVISOR_RETRIES: Final = 10
LOCAL_HOSTS: Final = ("127.0.0.1", "localhost")
# Host names AceStream engine add-ons get on the Supervisor network, besides the
# installed add-ons whose slug names AceStream (see _addon_hosts).
ADDON_HOSTS: Final = ("acestream", "acestream-engine", "local-acestream")
# Where engines listen unless told otherwise; a module attribute so tests can aim
# the probes at a simulator instead of whatever runs on this machine's 6878.
ENGINE_PORT = DEFAULT_PORT


@dataclass(frozen=True, slots=True)
class FoundEngine:
    """An engine that answered a version probe."""

    host: str
    port: int
    version: str

    @property
    def key(self) -> str:
        """Its identity (see engine_key)."""
        return engine_key(self.host, self.port)


def engine_key(host: str, port: int) -> str:
    """The identity of an engine: its address (the engine has no id of its own)."""
    return f"{host.lower()}:{port}"


async def _local_addresses(hass: HomeAssistant) -> set[str]:
    return {
        str(ip["address"])
        for adapter in await network.async_get_adapters(hass)
        if adapter["enabled"]
        for ip in adapter["ipv4"]
    }


def _addon_hosts(hass: HomeAssistant) -> list[str]:
    """Under the Supervisor: the usual add-on names and installed AceStream add-ons.

    An add-on's host name is its slug with dashes, prefixed by its repository's
    hash, so the installed ones are the only way to find third-party add-ons.
    While the Supervisor's data loads, the usual names are all there is.
    """
    if not is_hassio(hass):
        return []
    # Imported here: the hassio integration is only loaded under the Supervisor.
    from homeassistant.components.hassio import (  # noqa: PLC0415
        hostname_from_addon_slug,
    )

    installed = [
        hostname_from_addon_slug(slug)
        for slug in addon_slugs(hass) or ()
        if "acestream" in slug.lower()
    ]
    return list(dict.fromkeys([*ADDON_HOSTS, *installed]))


def supervisor_loading(hass: HomeAssistant) -> bool:
    """Under the Supervisor, before it has told which add-ons are installed."""
    return is_hassio(hass) and addon_slugs(hass) is None


async def _probe(client: EngineClient) -> EngineVersion | None:
    try:
        return await client.get_version()
    except EngineError:
        return None
    except Exception as err:
        LOGGER.debug("Probing %s failed: %s", client.base_url, err)
        return None


@callback
def async_setup_discovery(hass: HomeAssistant) -> None:
    """Probe a minute after start, then every DISCOVERY_INTERVAL.

    A probe made while the Supervisor's data loads misses the installed add-ons:
    it is repeated every DISCOVERY_DELAY until that data is there (at most
    SUPERVISOR_RETRIES times; the interval's probes go on after that).
    """
    cancel: dict[str, CALLBACK_TYPE] = {}
    retries = 0

    async def run(_now: datetime | None = None) -> None:
        nonlocal retries
        if (pending := cancel.pop("retry", None)) is not None:
            pending()
        await async_discover(hass)
        if supervisor_loading(hass) and retries < SUPERVISOR_RETRIES:
            retries += 1
            LOGGER.debug("Supervisor data not loaded yet; probing again soon")
            cancel["retry"] = async_call_later(hass, DISCOVERY_DELAY, run)

    cancel["first"] = async_call_later(hass, DISCOVERY_DELAY, run)
    cancel["interval"] = async_track_time_interval(
        hass, run, DISCOVERY_INTERVAL, name=f"{DOMAIN} discovery"
    )

    @callback
    def stop(_event: Event) -> None:
        for unsub in cancel.values():
            unsub()
        cancel.clear()

    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, stop)


def _known_keys(hass: HomeAssistant, include_ignored: bool) -> set[str]:
    return {
        key
        for entry in hass.config_entries.async_entries(
            DOMAIN, include_ignore=include_ignored
        )
        for key in (
            entry.unique_id,
            engine_key(entry.data[CONF_HOST], entry.data[CONF_PORT])
            if CONF_HOST in entry.data
            else None,
        )
        if key
    }


async def async_find_engines(
    hass: HomeAssistant,
    extra: Iterable[tuple[str, int]] = (),
    *,
    include_ignored: bool = True,
) -> list[FoundEngine]:
    """Probe the candidates in parallel; return the engines not configured yet.

    ``include_ignored``: ignored engines count as configured (periodic discovery
    must not offer them again; a user adding an engine may still pick one).
    """
    port = ENGINE_PORT
    local = [*LOCAL_HOSTS, *sorted(await _local_addresses(hass))]
    known = _known_keys(hass, include_ignored)
    # This machine's addresses all reach the same engine: offer it once, and not
    # at all if it is already configured under any of them.
    local_known = any(engine_key(host, port) in known for host in local)
    candidates: list[tuple[str, int]] = []
    if not local_known:
        candidates += [(host, port) for host in local]
    candidates += [(host, port) for host in _addon_hosts(hass)]
    candidates += [(host, port) for host, port in extra]
    candidates = [c for c in dict.fromkeys(candidates) if engine_key(*c) not in known]
    session = async_get_clientsession(hass)
    clients = [
        EngineClient(session, host, port, request_timeout=PROBE_TIMEOUT)
        for host, port in candidates
    ]
    answers = await asyncio.gather(*(_probe(client) for client in clients))
    answered = [
        FoundEngine(host, at, version.version)
        for (host, at), version in zip(candidates, answers, strict=True)
        if version is not None
    ]
    here = [e for e in answered if e.host in local and e.port == port]
    # The first of this machine's addresses that answered stands for all of them.
    return [*here[:1], *(e for e in answered if e not in here)]


async def async_discover(
    hass: HomeAssistant, extra: Iterable[tuple[str, int]] = ()
) -> list[tuple[str, int]]:
    """Probe the candidates; start a discovery flow for each new engine found."""
    found = await async_find_engines(hass, extra)
    for engine in found:
        discovery_flow.async_create_flow(
            hass,
            DOMAIN,
            context={"source": SOURCE_INTEGRATION_DISCOVERY},
            data={CONF_HOST: engine.host, CONF_PORT: engine.port},
        )
    return [(engine.host, engine.port) for engine in found]
