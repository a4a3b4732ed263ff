"""The Home Assistant-level setup most test files share, as fixtures and helpers.

Registered as a plugin by tests/conftest.py, so a test file says only what it tests.
On top of ``loaded_entry`` (an engine entry against ``engine_sim``):

- ``owner_client``: the owner's (an admin's) HTTP client;
- ``channel`` and ``access_key``: one of each, with its device and entities;
- ``playing``: a viewer ``playing_reads`` bytes into ``CID``'s broadcast;
- ``second_entry`` on ``second_sim``, and ``engines``, both engines of a failover;
- ``broadcast_config`` (define or parametrize it: short fault timeouts, say) and
  ``fast_tick`` (entities refreshed every second).

Helpers add what a test needs more of (``add_channel``, ``add_key``, ``add_engine``,
``edit_channel``) and wait on conditions (``until``, ``wait_state``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from types import MappingProxyType
from typing import Any
from unittest.mock import patch

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigSubentry,
)
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser

from custom_components.acestream_proxy import pool, updates
from custom_components.acestream_proxy.access import new_secret
from custom_components.acestream_proxy.const import DOMAIN, SUBENTRY_ACCESS_KEY
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.stream.broadcast import (
    BroadcastConfig,
    Broadcaster,
)
from tests.helpers import find_device, read_bytes
from tests.simulator import EngineSimulator

CID = "0a4848271c91ce2d8965ce416267c25047dc8141"
CID2 = "1b4848271c91ce2d8965ce416267c25047dc8142"
PREFIX = "/api/acestream_proxy"

type ClientFactory = Callable[[], Awaitable[TestClient]]


async def until(
    check: Callable[[], object], timeout: float = 5, every: float = 0.02
) -> None:
    """Wait until ``check()`` holds (TimeoutError if it never does)."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(every)


async def wait_state(
    hass: HomeAssistant,
    entity_id: str,
    check: Callable[[str], bool],
    timeout: float = 10,
) -> str:
    """The state of ``entity_id`` once ``check`` holds for it."""
    async with asyncio.timeout(timeout):
        while True:
            state = hass.states.get(entity_id)
            if state is not None and check(state.state):
                return state.state
            await asyncio.sleep(0.05)


def entities_of(hass: HomeAssistant, device_id: str) -> dict[str, str]:
    """Entity id by translation key of every entity of a device (disabled too)."""
    return {
        entry.translation_key or "": entry.entity_id
        for entry in er.async_entries_for_device(er.async_get(hass), device_id, True)
    }


def device_of(hass: HomeAssistant, identifier: str) -> dr.DeviceEntry:
    """Our device with this identifier; fails when there is none."""
    device = find_device(hass, identifier)
    assert device is not None, f"no device {identifier}"
    return device


async def add_engine(
    hass: HomeAssistant,
    sim: EngineSimulator,
    options: dict[str, Any] | None = None,
    title: str | None = None,
) -> MockConfigEntry:
    """Another engine entry, against ``sim``, set up."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=title or f"engine {sim.port}",
        data={CONF_HOST: "127.0.0.1", CONF_PORT: sim.port},
        options=options or {},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def add_channel(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    name: str,
    content: str = CID,
    **extra: str,
) -> str:
    """Add a channel through its flow, as a user does; returns its subentry id."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "channel"), context={"source": SOURCE_USER}
    )
    await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": name, "content": content, **extra}
    )
    await hass.async_block_till_done()
    return next(
        sub.subentry_id for sub in entry.subentries.values() if sub.title == name
    )


async def edit_channel(
    hass: HomeAssistant, entry: MockConfigEntry, subentry_id: str, **data: str
) -> dict[str, Any]:
    """Edit a channel through its reconfigure flow, as a user does; how it ended."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, "channel"),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    return dict(
        await hass.config_entries.subentries.async_configure(result["flow_id"], data)
    )


def add_key(
    hass: HomeAssistant, entry: MockConfigEntry, user_id: str, name: str
) -> str:
    """An access key bound to ``user_id``, added as its flow saves it; returns the
    secret. (The flow itself binds the key to whoever runs it: see test_access.)"""
    secret = new_secret()
    hass.config_entries.async_add_subentry(
        entry,
        ConfigSubentry(
            data=MappingProxyType({"secret": secret, "user_id": user_id}),
            subentry_type=SUBENTRY_ACCESS_KEY,
            title=name,
            unique_id=None,
        ),
    )
    return secret


async def call_over_ws(
    ws: Any, service: str, data: dict[str, Any], *, response: bool = True
) -> dict[str, Any]:
    """Call one of our actions as the UI does (WebSocket API); its answer."""
    message: dict[str, Any] = {
        "type": "call_service",
        "domain": DOMAIN,
        "service": service,
        "service_data": data,
    }
    if response:
        message["return_response"] = True
    await ws.send_json_auto_id(message)
    return dict(await ws.receive_json())


def broadcaster_of(hass: HomeAssistant, infohash: str) -> Broadcaster:
    """The broadcaster of the broadcast of ``infohash``."""
    return get_hub(hass).broadcasts[infohash].broadcaster


async def watch_and_leave(
    hass: HomeAssistant,
    client: TestClient,
    sim: EngineSimulator,
    size: int = 50_000,
) -> Broadcaster:
    """One viewer reads ``size`` bytes of ``CID``'s stream and leaves; the
    broadcaster, which outlives it for the linger."""
    async with client.get(f"{PREFIX}/stream/{CID}") as resp:
        await read_bytes(resp, size)
    return broadcaster_of(hass, sim.infohash_for(CID))


@dataclass(frozen=True)
class Owned:
    """A subentry with its device: a channel or an access key."""

    subentry_id: str
    device: dr.DeviceEntry
    entities: dict[str, str]


@dataclass(frozen=True)
class Key(Owned):
    """An access key and its secret."""

    secret: str


@dataclass(frozen=True)
class Viewer:
    """A viewer of a playing broadcast: its open response and what it read."""

    resp: ClientResponse
    head: bytes
    broadcaster: Broadcaster


@pytest.fixture
def broadcast_config() -> dict[str, Any]:
    """Fields of the ``BroadcastConfig`` every broadcast of the hub gets (short
    fault timeouts, say); test files override by defining or parametrizing this name."""
    return {}


@pytest.fixture(autouse=True)
def broadcasts_use_broadcast_config(broadcast_config: dict[str, Any]) -> Iterator[None]:
    """The engine pool builds its broadcasts' config with ``broadcast_config``
    applied."""
    if not broadcast_config:
        yield
        return
    with patch.object(
        pool, "BroadcastConfig", partial(BroadcastConfig, **broadcast_config)
    ):
        yield


@pytest.fixture
def fast_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entities refresh, and engine statistics are read, every second."""
    monkeypatch.setattr(updates, "TICK", timedelta(seconds=1))
    monkeypatch.setattr(updates, "STATS_EVERY_TICKS", 1)


@pytest.fixture
async def owner_client(
    loaded_entry: MockConfigEntry, hass_client: ClientFactory
) -> TestClient:
    """The HTTP client of the owner (an admin), the engine entry loaded."""
    return await hass_client()


@pytest.fixture
async def channel(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> Owned:
    """A channel "Sports 1" of ``CID``, with its device and entities."""
    subentry_id = await add_channel(hass, loaded_entry, "Sports 1", CID)
    device = device_of(hass, f"channel_{subentry_id}")
    return Owned(subentry_id, device, entities_of(hass, device.id))


@pytest.fixture
async def access_key(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, hass_admin_user: MockUser
) -> Key:
    """An access key "Hall TV" of the owner, with its device and entities."""
    secret = add_key(hass, loaded_entry, hass_admin_user.id, "Hall TV")
    await hass.async_block_till_done()
    subentry_id = next(
        sub.subentry_id
        for sub in loaded_entry.subentries.values()
        if sub.data.get("secret") == secret
    )
    device = device_of(hass, f"access_key_{subentry_id}")
    return Key(subentry_id, device, entities_of(hass, device.id), secret)


@pytest.fixture
def second_strict() -> bool:
    """Whether ``second_sim`` behaves like a real engine (see tests.simulator);
    tests override by parametrizing this name."""
    return True


@pytest.fixture
async def second_sim(
    socket_enabled: None, second_strict: bool
) -> AsyncIterator[EngineSimulator]:
    """A second engine simulator, with a short cold start."""
    async with EngineSimulator(cold_start=0.2, strict=second_strict) as sim:
        yield sim


@pytest.fixture
async def second_entry(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    second_sim: EngineSimulator,
    entry_options: dict[str, Any],
) -> MockConfigEntry:
    """A second engine entry, "second engine", against ``second_sim``, with the
    options of the first, set up after it."""
    return await add_engine(hass, second_sim, entry_options, title="second engine")


@dataclass(frozen=True)
class Engines:
    """Two engine entries, set up, and their simulators: the first is
    ``loaded_entry`` on ``engine_sim``, the second "second engine" on ``second_sim``."""

    first: MockConfigEntry
    first_sim: EngineSimulator
    second: MockConfigEntry
    second_sim: EngineSimulator

    @property
    def sims(self) -> dict[str, EngineSimulator]:
        """The simulator of each entry, by entry id."""
        return {
            self.first.entry_id: self.first_sim,
            self.second.entry_id: self.second_sim,
        }


@pytest.fixture
def engines(
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    second_entry: MockConfigEntry,
    second_sim: EngineSimulator,
) -> Engines:
    """Both engines of a failover: ``loaded_entry`` and ``second_entry``."""
    return Engines(loaded_entry, engine_sim, second_entry, second_sim)


@pytest.fixture
def playing_reads() -> int:
    """How many bytes the ``playing`` viewer reads first; tests override by
    parametrizing this name."""
    return 50_000


@pytest.fixture
async def playing(
    hass: HomeAssistant,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
    playing_reads: int,
) -> AsyncIterator[Viewer]:
    """A viewer of ``CID``'s stream, ``playing_reads`` bytes in: its broadcast plays."""
    async with owner_client.get(f"{PREFIX}/stream/{CID}") as resp:
        assert resp.status == 200, await resp.text()
        head = await read_bytes(resp, playing_reads)
        assert len(head) >= playing_reads
        yield Viewer(resp, head, broadcaster_of(hass, engine_sim.infohash_for(CID)))
