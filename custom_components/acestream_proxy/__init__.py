"""AceStream Proxy: share AceStream broadcasts to any number of viewers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.const import (
    CONF_HOST,
    CONF_PORT,
    EVENT_HOMEASSISTANT_STOP,
    Platform,
)
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.dispatcher import async_dispatcher_send

from .const import DOMAIN, SUBENTRY_CHANNEL
from .coordinator import EngineCoordinator
from .data import AceStreamConfigEntry, AceStreamData
from .discovery import async_setup_discovery
from .engine import EngineClient
from .hub import HUB_KEY, StreamHub, get_hub, signal_channels_changed
from .playlist import PlaylistView
from .services import async_register_services
from .views import async_register_views

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.typing import ConfigType

PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.BUTTON, Platform.SENSOR]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Create the domain-wide hub, its views and actions, once."""
    hub = StreamHub(hass)
    hass.data[HUB_KEY] = hub
    async_register_views(hass)
    hass.http.register_view(PlaylistView())
    async_register_services(hass)
    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, hub.async_shutdown)
    async_setup_discovery(hass)
    return True


def _channels(entry: AceStreamConfigEntry) -> dict[str, dict[str, Any]]:
    return {
        subentry_id: dict(subentry.data)
        for subentry_id, subentry in entry.subentries.items()
        if subentry.subentry_type == SUBENTRY_CHANNEL
    }


async def async_setup_entry(hass: HomeAssistant, entry: AceStreamConfigEntry) -> bool:
    """Connect to one engine."""
    client = EngineClient(
        async_get_clientsession(hass), entry.data[CONF_HOST], entry.data[CONF_PORT]
    )
    coordinator = EngineCoordinator(hass, entry, client)
    await coordinator.async_config_entry_first_refresh()
    entry.runtime_data = AceStreamData(
        client=client, coordinator=coordinator, channels=_channels(entry)
    )
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    get_hub(hass).add_engine(entry)
    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))
    return True


async def _async_entry_updated(
    hass: HomeAssistant, entry: AceStreamConfigEntry
) -> None:
    """Channels added: new entities. Channels edited: reload. Options: next start."""
    data = entry.runtime_data
    channels = _channels(entry)
    edited = any(
        channels.get(subentry_id, old) != old
        for subentry_id, old in data.channels.items()
    )
    added = set(channels) - set(data.channels)
    data.channels = channels
    if edited:
        hass.config_entries.async_schedule_reload(entry.entry_id)
    elif added:
        async_dispatcher_send(hass, signal_channels_changed(entry.entry_id))
    get_hub(hass).request_update()


async def async_unload_entry(hass: HomeAssistant, entry: AceStreamConfigEntry) -> bool:
    """End the engine's broadcasts and unload its entities."""
    await get_hub(hass).async_remove_engine(entry)
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
