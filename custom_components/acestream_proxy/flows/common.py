"""What more than one flow uses: the engine's address form and its check, a
playlist fetched for a form, and the abort reason of reconfigure steps."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Final

from homeassistant.config_entries import (
    ConfigSubentry,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
)
import voluptuous as vol

from ..const import DEFAULT_HOST, DEFAULT_PORT, LOGGER
from ..playlist import (
    NotAPlaylistError,
    PlaylistAddressError,
    PlaylistFetchError,
    PlaylistTimeoutError,
    PlaylistTooLargeError,
    fetch_playlist,
)
from ..stream.engine import EngineClient, EngineError, EngineVersion

# What our reconfigure steps abort with, themselves rather than through Home
# Assistant's update-and-abort helpers: from 2026.10 the helpers' reason is shown
# in Home Assistant's shared words, ours says what changed (the engine's address,
# the channel, the key).
RECONFIGURED: Final = "reconfigure_successful"

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


async def async_fetch_list(
    hass: HomeAssistant, url: str, errors: dict[str, str]
) -> str | None:
    """The playlist at ``url``, or None with why under the URL in ``errors``."""
    try:
        return await fetch_playlist(hass, url)
    except PlaylistTimeoutError:
        errors[CONF_URL] = "fetch_timeout"
    except PlaylistTooLargeError:
        errors[CONF_URL] = "too_large"
    except NotAPlaylistError:
        errors[CONF_URL] = "not_playlist"
    except PlaylistAddressError:
        errors[CONF_URL] = "bad_address"
    except PlaylistFetchError as err:
        LOGGER.debug("Playlist not fetched: %s", err)
        errors[CONF_URL] = "cannot_fetch"
    return None


class FormSubentryFlow(ConfigSubentryFlow):
    """A subentry made and edited with one form: the reconfigure step shows the
    user step's form, filled from the subentry."""

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Add a subentry."""
        return await self._async_form(user_input, None)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Edit the subentry with the form it was made with."""
        return await self._async_form(user_input, self._get_reconfigure_subentry())

    async def _async_form(
        self, user_input: dict[str, Any] | None, subentry: ConfigSubentry | None
    ) -> SubentryFlowResult:
        """The form of this flow's step (``self.source``); ``subentry`` is None
        when adding one."""
        raise NotImplementedError
