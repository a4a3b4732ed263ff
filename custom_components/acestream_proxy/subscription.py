"""Playlist subscriptions: a channel list at a URL, kept current.

A subscription is a subentry of an engine entry (its name, URL, refresh interval
and whether channels gone from the list are kept). Each refresh fetches the list
(conditionally: a 304 does no work) and applies the diff of listdiff.py to the
channels the subscription added. A refresh that fails changes nothing; after
FAILURES_FOR_REPAIR failures in a row a repair issue says so, and the next
success clears it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.const import CONF_URL
from homeassistant.core import (
    CALLBACK_TYPE,
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv, issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.start import async_at_started
from homeassistant.util.hass_dict import HassKey
import voluptuous as vol

from . import compat
from .channel import Channel, parse_playlist
from .const import (
    CONF_KEEP_REMOVED,
    CONF_REFRESH_HOURS,
    DEFAULT_REFRESH_HOURS,
    DOMAIN,
    FAILURES_FOR_REPAIR,
    LOGGER,
    SUBENTRY_SUBSCRIPTION,
)
from .listdiff import ListDiff, diff_channels
from .playlist import (
    PlaylistFetchError,
    Validators,
    channel_room,
    channel_subentry,
    fetch_playlist_if_changed,
    iter_channels,
)

if TYPE_CHECKING:
    from .stream.engine import ContentRef


class EmptyPlaylistError(PlaylistFetchError):
    """The list has no AceStream channel (a refresh would remove them all)."""


@dataclass(slots=True)
class SubscriptionState:
    """What a subscription's refreshes remember (in memory: a restart refetches)."""

    validators: Validators = field(default_factory=Validators)
    failures: int = 0
    last_error: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


STATES: HassKey[dict[str, SubscriptionState]] = HassKey(f"{DOMAIN}_subscriptions")


def subscription_issue_id(subentry_id: str) -> str:
    """Repair issue of a subscription whose refreshes keep failing."""
    return f"subscription_failing_{subentry_id}"


def get_state(hass: HomeAssistant, subentry_id: str) -> SubscriptionState:
    """The subscription's state, created on first use."""
    return hass.data.setdefault(STATES, {}).setdefault(subentry_id, SubscriptionState())


def iter_subscriptions(
    hass: HomeAssistant,
) -> list[tuple[ConfigEntry, ConfigSubentry]]:
    """Every subscription of every engine entry."""
    return [
        (entry, subentry)
        for entry in hass.config_entries.async_entries(DOMAIN)
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_SUBSCRIPTION
    ]


@callback
def async_plan(
    hass: HomeAssistant,
    entry: ConfigEntry,
    subscription_id: str,
    text: str,
    *,
    keep_removed: bool,
) -> ListDiff:
    """The diff a refresh from ``text`` would apply (nothing is changed).

    Raises EmptyPlaylistError when the list has no channel: a list that lost
    them all is far likelier broken than true.
    """
    playlist = parse_playlist(text)
    if not playlist.channels:
        raise EmptyPlaylistError("the list has no AceStream channel")
    current: list[tuple[str, Channel]] = []
    taken: set[ContentRef] = set()
    for owner, sub, channel in iter_channels(hass):
        if owner is entry and channel.subscription == subscription_id:
            current.append((sub.subentry_id, channel))
        else:
            taken.add(channel.ref)
    return diff_channels(
        current,
        playlist.channels,
        subscription=subscription_id,
        taken=taken,
        keep_removed=keep_removed,
        room=channel_room(entry),
    )


@callback
def async_apply(hass: HomeAssistant, entry: ConfigEntry, diff: ListDiff) -> None:
    """Change the entry's channel subentries as ``diff`` says, in one go."""
    entries = hass.config_entries
    for subentry_id in diff.remove:
        entries.async_remove_subentry(entry, subentry_id)
    # Home Assistant refuses two subentries with one unique id even for a
    # moment: channels that swap ids let go of theirs first.
    moving = [
        (subentry_id, channel)
        for subentry_id, channel in diff.update
        if entry.subentries[subentry_id].unique_id != channel.unique_id
    ]
    wanted = {channel.unique_id for _, channel in moving}
    for subentry_id, _ in moving:
        if entry.subentries[subentry_id].unique_id in wanted:
            entries.async_update_subentry(
                entry, entry.subentries[subentry_id], unique_id=None
            )
    for subentry_id, channel in diff.update:
        entries.async_update_subentry(
            entry,
            entry.subentries[subentry_id],
            title=channel.name,
            data=channel.as_data(),
            unique_id=channel.unique_id,
        )
    for channel in diff.add:
        entries.async_add_subentry(entry, channel_subentry(channel))


async def async_refresh(
    hass: HomeAssistant, entry: ConfigEntry, subentry_id: str
) -> dict[str, Any]:
    """Refresh one subscription now; what it did, by count.

    Raises PlaylistFetchError (counted towards the repair) when the list could
    not be read, or read as one; nothing is changed then.
    """
    state = get_state(hass, subentry_id)
    async with state.lock:
        subentry = entry.subentries[subentry_id]
        try:
            fetched = await fetch_playlist_if_changed(
                hass, subentry.data[CONF_URL], state.validators
            )
            if fetched.text is None:
                result: dict[str, Any] = {"not_modified": True}
            else:
                # Planned and applied with no await between: nothing else
                # changes the channels meanwhile.
                diff = async_plan(
                    hass,
                    entry,
                    subentry_id,
                    fetched.text,
                    keep_removed=bool(subentry.data.get(CONF_KEEP_REMOVED, False)),
                )
                async_apply(hass, entry, diff)
                result = {"not_modified": False, **diff.counts()}
                # Channels left out come in once there is room: until then each
                # refresh reads the list whole.
                state.validators = Validators() if diff.left_out else fetched.validators
                if diff.left_out:
                    LOGGER.warning(
                        "Subscription %s: %d new channels left out, the engine"
                        " entry is full",
                        subentry.title,
                        len(diff.left_out),
                    )
        except PlaylistFetchError as err:
            _async_failed(hass, entry, subentry, state, err)
            raise
        state.failures, state.last_error = 0, None
        ir.async_delete_issue(hass, DOMAIN, subscription_issue_id(subentry_id))
        return result


@callback
def _async_failed(
    hass: HomeAssistant,
    entry: ConfigEntry,
    subentry: ConfigSubentry,
    state: SubscriptionState,
    err: PlaylistFetchError,
) -> None:
    state.failures += 1
    state.last_error = str(err) or type(err).__name__
    LOGGER.warning(
        "Subscription %s not refreshed (%d in a row): %s; its channels stay as they were",
        subentry.title,
        state.failures,
        state.last_error,
    )
    if state.failures >= FAILURES_FOR_REPAIR:
        compat.async_create_issue(
            hass,
            DOMAIN,
            subscription_issue_id(subentry.subentry_id),
            config_entry_id=entry.entry_id,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="subscription_failing",
            translation_placeholders={
                "name": subentry.title,
                "url": str(subentry.data[CONF_URL]),
                "failures": str(state.failures),
                "error": state.last_error,
            },
        )


async def _async_refresh_logged(
    hass: HomeAssistant, entry: ConfigEntry, subentry_id: str
) -> None:
    """A scheduled refresh: a failure is logged and counted, never raised."""
    if subentry_id not in entry.subentries:
        return
    # A failure is logged and counted by async_refresh.
    with contextlib.suppress(PlaylistFetchError):
        await async_refresh(hass, entry, subentry_id)


@callback
def async_setup_subscriptions(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Refresh the entry's subscriptions once Home Assistant has started, then
    each on its interval; a new one at once; a removed one's timer and repair go.
    """
    # Per subscription: what its timer was set for (interval, URL), and the timer.
    timers: dict[str, tuple[tuple[float, str], CALLBACK_TYPE]] = {}

    def refresh(subentry_id: str) -> None:
        entry.async_create_background_task(
            hass,
            _async_refresh_logged(hass, entry, subentry_id),
            f"{DOMAIN} refresh subscription {subentry_id}",
        )

    @callback
    def sync(refresh_changed: bool) -> None:
        present = {
            subentry_id: (
                float(sub.data.get(CONF_REFRESH_HOURS, DEFAULT_REFRESH_HOURS)),
                str(sub.data[CONF_URL]),
            )
            for subentry_id, sub in entry.subentries.items()
            if sub.subentry_type == SUBENTRY_SUBSCRIPTION
        }
        for subentry_id in set(timers) - set(present):
            timers.pop(subentry_id)[1]()
            hass.data.get(STATES, {}).pop(subentry_id, None)
            ir.async_delete_issue(hass, DOMAIN, subscription_issue_id(subentry_id))
        for subentry_id, setting in present.items():
            known = timers.get(subentry_id)
            if known is not None and known[0] == setting:
                continue
            if known is not None:
                known[1]()
            if refresh_changed and (known is None or known[0][1] != setting[1]):
                # New, or moved to another URL: what the old one said is void.
                get_state(hass, subentry_id).validators = Validators()
                refresh(subentry_id)

            @callback
            def tick(_: datetime, subentry_id: str = subentry_id) -> None:
                refresh(subentry_id)

            timers[subentry_id] = (
                setting,
                async_track_time_interval(hass, tick, timedelta(hours=setting[0])),
            )

    @callback
    def started(_: HomeAssistant) -> None:
        for subentry_id in timers:
            refresh(subentry_id)

    pending: list[bool] = [False]

    async def updated(_: HomeAssistant, __: ConfigEntry) -> None:
        # Called eagerly at each change: one run after changes made together.
        if pending[0]:
            return
        pending[0] = True
        await asyncio.sleep(0)
        pending[0] = False
        sync(refresh_changed=True)

    sync(refresh_changed=False)
    entry.async_on_unload(async_at_started(hass, started))
    entry.async_on_unload(entry.add_update_listener(updated))

    @callback
    def stop_timers() -> None:
        for _, cancel in timers.values():
            cancel()
        timers.clear()

    entry.async_on_unload(stop_timers)


SERVICE_REFRESH_PLAYLIST: Final = "refresh_playlist"
ATTR_SUBSCRIPTION: Final = "subscription"
REFRESH_SCHEMA: Final = vol.Schema({vol.Optional(ATTR_SUBSCRIPTION): cv.string})


async def _async_refresh_action(call: ServiceCall) -> ServiceResponse:
    """Refresh one subscription (by name) or all; what each did."""
    hass = call.hass
    chosen = iter_subscriptions(hass)
    if (name := call.data.get(ATTR_SUBSCRIPTION)) is not None:
        wanted = name.strip().casefold()
        chosen = [item for item in chosen if item[1].title.casefold() == wanted]
        if not chosen:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="unknown_subscription",
                translation_placeholders={"name": name},
            )
    results: list[dict[str, Any]] = []
    for entry, subentry in chosen:
        try:
            done = await async_refresh(hass, entry, subentry.subentry_id)
        except PlaylistFetchError as err:
            if name is not None:
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="refresh_failed",
                    translation_placeholders={
                        "name": subentry.title,
                        "error": str(err),
                    },
                ) from err
            done = {"error": str(err)}
        results.append({"name": subentry.title, **done})
    return {"subscriptions": cast("list[Any]", results)}


@callback
def async_register_refresh_action(hass: HomeAssistant) -> None:
    """Register acestream_proxy.refresh_playlist once, in async_setup."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_REFRESH_PLAYLIST,
        _async_refresh_action,
        REFRESH_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
