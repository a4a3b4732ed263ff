"""The config flow: one entry per AceStream engine, found or typed, and its
reconfigure step. It names the options flow and the subentry flows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
)
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import callback
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.typing import DiscoveryInfoType
import voluptuous as vol

from ..const import (
    DEFAULT_PORT,
    DOMAIN,
    SUBENTRY_ACCESS_KEY,
    SUBENTRY_CHANNEL,
    SUBENTRY_PLAYLIST,
    SUBENTRY_SUBSCRIPTION,
)
from ..discovery import FoundEngine, async_find_engines, engine_key
from .channel import ChannelFlow
from .common import RECONFIGURED, connection_schema, validate_connection
from .key import AccessKeyFlow
from .options import AceStreamOptionsFlow
from .playlist import PlaylistImportFlow
from .subscription import SubscriptionFlow

if TYPE_CHECKING:
    from ..data import AceStreamConfigEntry

# The user step's choice: a found engine's key, or this to type an address.
CONF_ENGINE: Final = "engine"
MANUAL: Final = "manual"


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
        """Channels, app access keys and playlist subscriptions are subentries; an
        import adds many channels."""
        return {
            SUBENTRY_CHANNEL: ChannelFlow,
            SUBENTRY_PLAYLIST: PlaylistImportFlow,
            SUBENTRY_ACCESS_KEY: AccessKeyFlow,
            SUBENTRY_SUBSCRIPTION: SubscriptionFlow,
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
