"""Config flow: one entry per AceStream engine."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any, Final

from homeassistant.components.http.const import KEY_HASS_USER
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentry,
    ConfigSubentryFlow,
    OptionsFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_NAME, CONF_PORT, CONF_URL
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.http import current_request
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.typing import DiscoveryInfoType
import voluptuous as vol

from .access import app_playlist_url, iter_keys, new_secret
from .channel import Channel, channel_unique_id, ref_from_link
from .const import (
    CONF_CHANNEL_GROUP,
    CONF_CHANNEL_ID,
    CONF_CHANNEL_KIND,
    CONF_CHANNEL_LOGO,
    CONF_CHANNEL_NAME,
    CONF_HLS_SEGMENT,
    CONF_KEY_SECRET,
    CONF_KEY_USER_ID,
    CONF_LINGER,
    CONF_MAX_BROADCASTS,
    CONF_MAX_VIEWERS,
    CONF_PLAYLIST,
    CONF_REPLAY_WINDOW,
    DEFAULT_HLS_SEGMENT,
    DEFAULT_HOST,
    DEFAULT_LINGER,
    DEFAULT_MAX_BROADCASTS,
    DEFAULT_MAX_VIEWERS,
    DEFAULT_PORT,
    DEFAULT_REPLAY_WINDOW,
    DOMAIN,
    HLS_SEGMENT_RANGE,
    LINGER_RANGE,
    LOGGER,
    MAX_BROADCASTS_RANGE,
    MAX_CHANNELS_PER_ENGINE,
    MAX_VIEWERS_RANGE,
    REPLAY_WINDOW_RANGE,
    SUBENTRY_ACCESS_KEY,
    SUBENTRY_CHANNEL,
    SUBENTRY_PLAYLIST,
)
from .discovery import FoundEngine, async_find_engines, engine_key
from .playlist import (
    NotAPlaylistError,
    PlaylistFetchError,
    PlaylistTimeoutError,
    PlaylistTooLargeError,
    TooManyChannelsError,
    channel_room,
    fetch_playlist,
    import_channels,
)
from .stream.engine import (
    ContentKind,
    ContentRef,
    EngineClient,
    EngineError,
    EngineVersion,
)

if TYPE_CHECKING:
    from .data import AceStreamConfigEntry

# What our reconfigure steps abort with, themselves rather than through Home
# Assistant's update-and-abort helpers: from 2026.10 the helpers' reason is shown
# in Home Assistant's shared words, ours says what changed (the engine's address,
# the channel, the key).
RECONFIGURED: Final = "reconfigure_successful"

# The user step's choice: a found engine's key, or this to type an address.
CONF_ENGINE: Final = "engine"
MANUAL: Final = "manual"

_HOSTNAME: Final = re.compile(
    r"^(?=.{1,253}$)([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)"
    r"(\.[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)*\.?$"
)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.match(host))
    return True


def connection_schema(defaults: dict[str, Any]) -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, DEFAULT_HOST)): (
                TextSelector()
            ),
            vol.Required(
                CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_PORT)
            ): vol.All(
                NumberSelector(
                    NumberSelectorConfig(min=1, max=65535, mode=NumberSelectorMode.BOX)
                ),
                vol.Coerce(int),
            ),
        }
    )


async def validate_connection(
    hass: HomeAssistant, user_input: dict[str, Any], errors: dict[str, str]
) -> EngineVersion | None:
    """Check the host, then ask the engine its version; fill ``errors``."""
    host = str(user_input[CONF_HOST]).strip()
    user_input[CONF_HOST] = host
    if not _valid_host(host):
        errors[CONF_HOST] = "invalid_host"
        return None
    client = EngineClient(
        async_get_clientsession(hass), host, int(user_input[CONF_PORT])
    )
    try:
        return await client.get_version()
    except EngineError as err:
        LOGGER.debug("Engine at %s:%s not usable: %s", host, user_input[CONF_PORT], err)
        errors["base"] = "cannot_connect"
    except Exception:
        LOGGER.exception("Unexpected error while checking the engine")
        errors["base"] = "unknown"
    return None


class AceStreamConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add an engine: offers the ones found, or asks for host and port; checks the
    engine answers."""

    VERSION = 1
    MINOR_VERSION = 1
    _discovered: tuple[str, int]
    _found: dict[str, FoundEngine]

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: AceStreamConfigEntry) -> OptionsFlow:
        """Tunables of the broadcaster."""
        return AceStreamOptionsFlow()

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Channels and app access keys are subentries; an import adds many channels."""
        return {
            SUBENTRY_CHANNEL: ChannelFlow,
            SUBENTRY_PLAYLIST: PlaylistImportFlow,
            SUBENTRY_ACCESS_KEY: AccessKeyFlow,
        }

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Offer the engines that answer around here, or go to the address form.

        This is how the first engine is found: the periodic probe only runs once
        the integration has an entry.
        """
        if user_input is None:
            self._found = {
                engine.key: engine
                for engine in await async_find_engines(self.hass, include_ignored=False)
            }
            if not self._found:
                return await self.async_step_manual()
            return self._show_found({})
        engine = self._found.get(str(user_input[CONF_ENGINE]))
        if engine is None:
            return await self.async_step_manual()
        await self._async_abort_configured(engine.host, engine.port)
        errors: dict[str, str] = {}
        version = await validate_connection(
            self.hass, {CONF_HOST: engine.host, CONF_PORT: engine.port}, errors
        )
        if version is not None:
            return self._create(engine.host, engine.port)
        return self._show_found(errors)

    @callback
    def _show_found(self, errors: dict[str, str]) -> ConfigFlowResult:
        options = [
            SelectOptionDict(
                value=key, label=f"{engine.host}:{engine.port} ({engine.version})"
            )
            for key, engine in self._found.items()
        ]
        # Labelled through selector.engine.options.manual in the translations.
        options.append(SelectOptionDict(value=MANUAL, label=MANUAL))
        schema = vol.Schema(
            {
                vol.Required(CONF_ENGINE, default=next(iter(self._found))): (
                    SelectSelector(
                        SelectSelectorConfig(
                            options=options,
                            translation_key=CONF_ENGINE,
                            mode=SelectSelectorMode.LIST,
                        )
                    )
                )
            }
        )
        return self.async_show_form(step_id="user", data_schema=schema, errors=errors)

    async def async_step_manual(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the engine's address."""
        errors: dict[str, str] = {}
        if user_input is not None:
            host = str(user_input[CONF_HOST]).strip()
            port = int(user_input[CONF_PORT])
            await self._async_abort_configured(host, port)
            version = await validate_connection(self.hass, user_input, errors)
            if version is not None:
                return self._create(host, port)
        return self.async_show_form(
            step_id="manual",
            data_schema=self.add_suggested_values_to_schema(
                connection_schema({}), user_input
            ),
            errors=errors,
        )

    async def _async_abort_configured(self, host: str, port: int) -> None:
        # The engine has no serial or id of its own: its address is the only
        # identity there is (needed so an ignored discovery stays ignored).
        # Entities never use it: their unique ids come from the entry id.
        await self.async_set_unique_id(engine_key(host, port))
        self._abort_if_unique_id_configured()
        self._async_abort_entries_match({CONF_HOST: host, CONF_PORT: port})

    @callback
    def _create(self, host: str, port: int) -> ConfigFlowResult:
        return self.async_create_entry(
            title=f"AceStream engine {host}:{port}",
            data={CONF_HOST: host, CONF_PORT: port},
        )

    async def async_step_integration_discovery(
        self, discovery_info: DiscoveryInfoType
    ) -> ConfigFlowResult:
        """An engine answered one of the discovery probes."""
        return await self._async_discovered(
            str(discovery_info[CONF_HOST]), int(discovery_info[CONF_PORT])
        )

    async def async_step_hassio(
        self, discovery_info: HassioServiceInfo
    ) -> ConfigFlowResult:
        """An add-on announced an engine through the Supervisor."""
        config = discovery_info.config
        return await self._async_discovered(
            str(config[CONF_HOST]), int(config.get(CONF_PORT, DEFAULT_PORT))
        )

    async def _async_discovered(self, host: str, port: int) -> ConfigFlowResult:
        await self._async_abort_configured(host, port)
        self._discovered = (host, port)
        self.context["title_placeholders"] = {"host": host, "port": str(port)}
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask before adding a found engine; check it still answers."""
        host, port = self._discovered
        errors: dict[str, str] = {}
        if user_input is not None:
            version = await validate_connection(
                self.hass, {CONF_HOST: host, CONF_PORT: port}, errors
            )
            if version is not None:
                return self._create(host, port)
        return self.async_show_form(
            step_id="discovery_confirm",
            description_placeholders={"host": host, "port": str(port)},
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Move an existing entry to another host or port."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            host = str(user_input[CONF_HOST]).strip()
            port = int(user_input[CONF_PORT])
            new = {CONF_HOST: host, CONF_PORT: port}
            for other in self._async_current_entries(include_ignore=False):
                if other.entry_id != entry.entry_id and all(
                    other.data.get(key) == value for key, value in new.items()
                ):
                    return self.async_abort(reason="already_configured")
            version = await validate_connection(self.hass, user_input, errors)
            if version is not None:
                self.hass.config_entries.async_update_entry(
                    entry,
                    unique_id=engine_key(host, port),
                    title=f"AceStream engine {host}:{port}",
                    data={**entry.data, **new},
                )
                # A loaded entry's update listener reloads it (from 2026.12 a flow
                # may not reload an entry that has one); one that is not loaded
                # (its setup retrying on the old address) is reloaded from here.
                if not entry.update_listeners:
                    self.hass.config_entries.async_schedule_reload(entry.entry_id)
                return self.async_abort(reason=RECONFIGURED)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                connection_schema(dict(entry.data)), user_input or dict(entry.data)
            ),
            errors=errors,
        )


def _number(minimum: int, maximum: int, unit: str | None = None) -> vol.All:
    config = NumberSelectorConfig(
        min=minimum, max=maximum, step=1, mode=NumberSelectorMode.BOX
    )
    if unit:
        config["unit_of_measurement"] = unit
    return vol.All(
        NumberSelector(config),
        vol.Coerce(int),
        vol.Range(min=minimum, max=maximum),
    )


class AceStreamOptionsFlow(OptionsFlow):
    """Broadcaster tunables; applied to broadcasts that start after the change."""

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show and store the options."""
        if user_input is not None:
            return self.async_create_entry(data=user_input)
        options = self.config_entry.options
        schema = vol.Schema(
            {
                vol.Required(
                    CONF_LINGER, default=options.get(CONF_LINGER, DEFAULT_LINGER)
                ): _number(*LINGER_RANGE, "s"),
                vol.Required(
                    CONF_REPLAY_WINDOW,
                    default=options.get(CONF_REPLAY_WINDOW, DEFAULT_REPLAY_WINDOW),
                ): _number(*REPLAY_WINDOW_RANGE, "s"),
                vol.Required(
                    CONF_MAX_VIEWERS,
                    default=options.get(CONF_MAX_VIEWERS, DEFAULT_MAX_VIEWERS),
                ): _number(*MAX_VIEWERS_RANGE),
                vol.Required(
                    CONF_MAX_BROADCASTS,
                    default=options.get(CONF_MAX_BROADCASTS, DEFAULT_MAX_BROADCASTS),
                ): _number(*MAX_BROADCASTS_RANGE),
                vol.Required(
                    CONF_HLS_SEGMENT,
                    default=options.get(CONF_HLS_SEGMENT, DEFAULT_HLS_SEGMENT),
                ): _number(*HLS_SEGMENT_RANGE, "s"),
            }
        )
        return self.async_show_form(step_id="init", data_schema=schema)


def _all_channel_ids(hass: HomeAssistant, skip: str | None = None) -> set[str]:
    """Unique ids of every channel of every engine entry."""
    return {
        subentry.unique_id
        for entry in hass.config_entries.async_entries(DOMAIN)
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_CHANNEL
        and subentry.unique_id
        and subentry.subentry_id != skip
    }


def _channel_schema() -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_CHANNEL_NAME): TextSelector(),
            vol.Required(CONF_CHANNEL_ID): TextSelector(),
            vol.Required(
                CONF_CHANNEL_KIND, default=ContentKind.CONTENT_ID.value
            ): SelectSelector(
                SelectSelectorConfig(
                    options=[kind.value for kind in ContentKind],
                    translation_key=CONF_CHANNEL_KIND,
                    mode=SelectSelectorMode.LIST,
                )
            ),
            vol.Optional(CONF_CHANNEL_GROUP): TextSelector(),
            vol.Optional(CONF_CHANNEL_LOGO): TextSelector(
                TextSelectorConfig(type=TextSelectorType.URL)
            ),
        }
    )


def _parse_channel(
    user_input: dict[str, Any], errors: dict[str, str]
) -> ContentRef | None:
    """A 40-hex id (of the chosen kind), an acestream:// link or an engine URL."""
    text = str(user_input[CONF_CHANNEL_ID]).strip()
    kind = ContentKind(user_input.get(CONF_CHANNEL_KIND, ContentKind.CONTENT_ID))
    try:
        return ContentRef.parse(kind, text)
    except ValueError:
        ref = ref_from_link(text)
    if ref is None:
        errors[CONF_CHANNEL_ID] = "invalid_id"
    return ref


class ChannelFlow(ConfigSubentryFlow):
    """Add or edit one channel: a name for a content id or an infohash."""

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for the channel; refused when the engine entry has no room left."""
        if not channel_room(self._get_entry()):
            return self.async_abort(
                reason="too_many_channels",
                description_placeholders={"max": str(MAX_CHANNELS_PER_ENGINE)},
            )
        return await self._async_step("user", user_input, None)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Edit a channel."""
        return await self._async_step(
            "reconfigure", user_input, self._get_reconfigure_subentry()
        )

    async def _async_step(
        self,
        step_id: str,
        user_input: dict[str, Any] | None,
        subentry: ConfigSubentry | None,
    ) -> SubentryFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            ref = _parse_channel(user_input, errors)
            name = str(user_input[CONF_CHANNEL_NAME]).strip()
            if not name:
                errors[CONF_CHANNEL_NAME] = "invalid_name"
            if ref is not None and not errors:
                unique_id = channel_unique_id(ref)
                skip = subentry.subentry_id if subentry else None
                if unique_id in _all_channel_ids(self.hass, skip):
                    errors[CONF_CHANNEL_ID] = "already_configured"
                else:
                    data = Channel(
                        name,
                        ref,
                        str(user_input.get(CONF_CHANNEL_GROUP, "")).strip() or None,
                        str(user_input.get(CONF_CHANNEL_LOGO, "")).strip() or None,
                    ).as_data()
                    if subentry is None:
                        return self.async_create_entry(
                            title=name, data=data, unique_id=unique_id
                        )
                    self.hass.config_entries.async_update_subentry(
                        self._get_entry(),
                        subentry,
                        title=name,
                        data=data,
                        unique_id=unique_id,
                    )
                    return self.async_abort(reason=RECONFIGURED)
        suggested = user_input or (dict(subentry.data) if subentry else {})
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                _channel_schema(), suggested
            ),
            errors=errors,
        )


class PlaylistImportFlow(ConfigSubentryFlow):
    """Import channels from an M3U playlist of acestream:// links."""

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Ask for a playlist URL or its text."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] | None = None
        if user_input is not None:
            url = str(user_input.get(CONF_URL, "")).strip()
            text = str(user_input.get(CONF_PLAYLIST, ""))
            if url:
                try:
                    text = await fetch_playlist(self.hass, url)
                except PlaylistTimeoutError:
                    errors[CONF_URL] = "fetch_timeout"
                except PlaylistTooLargeError:
                    errors[CONF_URL] = "too_large"
                except NotAPlaylistError:
                    errors[CONF_URL] = "not_playlist"
                except PlaylistFetchError as err:
                    LOGGER.debug("Playlist not fetched: %s", err)
                    errors[CONF_URL] = "cannot_fetch"
            elif not text.strip():
                errors["base"] = "no_playlist"
            if not errors:
                try:
                    summary = import_channels(self.hass, self._get_entry(), text)
                except TooManyChannelsError as err:
                    errors["base"] = "too_many_channels"
                    placeholders = err.placeholders()
                else:
                    return self.async_abort(
                        reason="imported",
                        description_placeholders=summary.placeholders(),
                    )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(
                    {
                        vol.Optional(CONF_URL): TextSelector(
                            TextSelectorConfig(type=TextSelectorType.URL)
                        ),
                        vol.Optional(CONF_PLAYLIST): TextSelector(
                            TextSelectorConfig(multiline=True)
                        ),
                    }
                ),
                user_input,
            ),
            errors=errors,
            description_placeholders=placeholders,
        )


class AccessKeyFlow(ConfigSubentryFlow):
    """An app's access key: a named secret whose URLs last until it is deleted."""

    _name: str
    _secret: str
    _user_id: str

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Name the app; the key acts for the admin creating it."""
        request = current_request.get()
        user = request.get(KEY_HASS_USER) if request is not None else None
        if user is None:
            # Only reachable outside the UI: a key must belong to someone.
            return self.async_abort(reason="no_user")
        errors: dict[str, str] = {}
        if user_input is not None:
            name = str(user_input[CONF_NAME]).strip()
            if not name:
                errors[CONF_NAME] = "invalid_name"
            elif any(
                key.name.casefold() == name.casefold() for key in iter_keys(self.hass)
            ):
                errors[CONF_NAME] = "name_taken"
            else:
                self._name, self._secret, self._user_id = name, new_secret(), user.id
                return await self.async_step_show()
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema({vol.Required(CONF_NAME): TextSelector()}), user_input
            ),
            errors=errors,
        )

    async def async_step_show(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Show the app's playlist URL; the key is saved on submit."""
        if user_input is not None:
            return self.async_create_entry(
                title=self._name,
                data={CONF_KEY_SECRET: self._secret, CONF_KEY_USER_ID: self._user_id},
            )
        return self.async_show_form(
            step_id="show",
            description_placeholders={"url": app_playlist_url(self.hass, self._secret)},
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Show the key's playlist URL again; rename it."""
        subentry = self._get_reconfigure_subentry()
        errors: dict[str, str] = {}
        if user_input is not None:
            name = str(user_input[CONF_NAME]).strip()
            if not name:
                errors[CONF_NAME] = "invalid_name"
            elif any(
                key.name.casefold() == name.casefold()
                and key.subentry_id != subentry.subentry_id
                for key in iter_keys(self.hass)
            ):
                errors[CONF_NAME] = "name_taken"
            else:
                self.hass.config_entries.async_update_subentry(
                    self._get_entry(), subentry, title=name
                )
                return self.async_abort(reason=RECONFIGURED)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema({vol.Required(CONF_NAME): TextSelector()}),
                user_input or {CONF_NAME: subentry.title},
            ),
            description_placeholders={
                "url": app_playlist_url(self.hass, str(subentry.data[CONF_KEY_SECRET]))
            },
            errors=errors,
        )
