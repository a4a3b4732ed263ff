"""AceStream Proxy: share AceStream broadcasts to any number of viewers."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from homeassistant.const import (
    CONF_HOST,
    CONF_PORT,
    EVENT_HOMEASSISTANT_STOP,
    Platform,
)
from homeassistant.core import HassJob, callback
from homeassistant.helpers import (
    config_validation as cv,
    device_registry as dr,
    issue_registry as ir,
)
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.dispatcher import (
    async_dispatcher_connect,
    async_dispatcher_send,
)

from .access import KEYS, AccessKeys
from .channel import Channel
from .const import DOMAIN, SUBENTRY_CHANNEL, SUBENTRY_SUBSCRIPTION
from .coordinator import EngineCoordinator, engine_issue_id
from .data import HUB_KEY, AceStreamConfigEntry, AceStreamData, get_hub
from .devices import (
    SIGNAL_ADHOC_MOVED,
    BroadcastTarget,
    async_channel_edited,
    async_move_adhoc,
    async_setup_devices,
    device_is_removable,
    signal_channels_changed,
)
from .discovery import async_setup_discovery
from .hub import StreamHub
from .record_actions import async_register_record_services
from .recordings import RECORDINGS_KEY, Recordings
from .services import async_register_services
from .stream.engine import EngineClient
from .subscription import (
    async_register_refresh_action,
    async_setup_subscriptions,
    subscription_issue_id,
)
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
    keys = hass.data[KEYS] = AccessKeys(hass)
    keys.async_setup()
    async_register_views(hass)
    async_register_services(hass)
    async_register_refresh_action(hass)
    async_register_record_services(hass)
    recordings = hass.data[RECORDINGS_KEY] = Recordings(hass, hub)
    # Files are finished first (as the broadcasts they read end, too).
    hass.async_add_shutdown_job(HassJob(recordings.async_shutdown))
    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, recordings.async_shutdown)
    # Before Home Assistant cancels background tasks (the producers): engine
    # sessions are stopped and every broadcast tells its end. The stop event is a
    # second chance for whoever fires it without a full shutdown.
    hass.async_add_shutdown_job(HassJob(hub.async_shutdown))
    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, hub.async_shutdown)
    hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, keys.async_shutdown)
    async_setup_discovery(hass)

    @callback
    def adhoc_moved(target: BroadcastTarget, from_id: str, to_id: str) -> None:
        if (entry := hass.config_entries.async_get_entry(to_id)) is not None:
            entry.async_create_background_task(
                hass,
                async_move_adhoc(hass, target, from_id, to_id),
                f"{DOMAIN} move {target.device_identifier}",
            )

    async_dispatcher_connect(hass, SIGNAL_ADHOC_MOVED, adhoc_moved)
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
    hub = get_hub(hass)
    # The engine's device before the entities that name it as their hub; the
    # broadcast devices a crash left go (a clean stop removes them with their
    # broadcast).
    async_setup_devices(hass, entry)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    hub.add_engine(entry)
    # Broadcast entities are available only while their engine answers.
    entry.async_on_unload(coordinator.async_add_listener(hub.request_update))
    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))
    async_setup_subscriptions(hass, entry)
    return True


async def _async_entry_updated(
    hass: HomeAssistant, entry: AceStreamConfigEntry
) -> None:
    """Address changed (reconfigure): reload. Channels added: new entities.
    Channels edited: renamed in place, without a reload (which would end every
    broadcast of the engine). Options: next start."""
    data = entry.runtime_data
    # Listeners run eagerly, at each change: the changes made together (a
    # playlist refresh) are handled in one run once they are all made.
    if data.update_pending:
        return
    data.update_pending = True
    await asyncio.sleep(0)
    data.update_pending = False
    if (entry.data[CONF_HOST], entry.data[CONF_PORT]) != (
        data.client.host,
        data.client.port,
    ):
        hass.config_entries.async_schedule_reload(entry.entry_id)
        return
    channels = _channels(entry)
    added = set(channels) - set(data.channels)
    for subentry_id, channel in channels.items():
        if data.channels.get(subentry_id, channel) != channel:
            async_channel_edited(
                hass, entry.entry_id, subentry_id, Channel.from_data(channel)
            )
    data.channels = channels
    if added:
        async_dispatcher_send(hass, signal_channels_changed(entry.entry_id))
    get_hub(hass).request_update()


async def async_unload_entry(hass: HomeAssistant, entry: AceStreamConfigEntry) -> bool:
    """End the engine's broadcasts and unload its entities."""
    await get_hub(hass).async_remove_engine(entry)
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: AceStreamConfigEntry) -> None:
    """The entry's repair goes with it. Releases that link issues to their entry
    (compat.ISSUE_CONFIG_ENTRY) have deleted it already; deleting again is a no-op."""
    ir.async_delete_issue(hass, DOMAIN, engine_issue_id(entry.entry_id))
    for subentry_id, subentry in entry.subentries.items():
        if subentry.subentry_type == SUBENTRY_SUBSCRIPTION:
            ir.async_delete_issue(hass, DOMAIN, subscription_issue_id(subentry_id))


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: AceStreamConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let the user delete a stale device: a broadcast that no longer plays, or a
    channel that no longer exists. Never the engine or a live broadcast."""
    return device_is_removable(hass, entry, device)
