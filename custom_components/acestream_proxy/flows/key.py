"""The access key subentry flow: an app's named secret, its playlist URL shown
once on creation and again on reconfigure."""

from __future__ import annotations

from typing import Any

from homeassistant.components.http.const import KEY_HASS_USER
from homeassistant.config_entries import ConfigSubentryFlow, SubentryFlowResult
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.helpers.http import current_request
from homeassistant.helpers.selector import TextSelector
import voluptuous as vol

from ..access import app_playlist_url, iter_keys, new_secret
from ..const import CONF_KEY_SECRET, CONF_KEY_USER_ID
from .common import RECONFIGURED


def _name_schema() -> vol.Schema:
    return vol.Schema({vol.Required(CONF_NAME): TextSelector()})


def _free_name(
    hass: HomeAssistant,
    user_input: dict[str, Any],
    errors: dict[str, str],
    own: str | None = None,
) -> str | None:
    """The name typed, unless it is empty or another key (not ``own``) has it;
    fill ``errors``. Names are told apart without case."""
    name = str(user_input[CONF_NAME]).strip()
    if not name:
        errors[CONF_NAME] = "invalid_name"
    elif any(
        key.name.casefold() == name.casefold() and key.subentry_id != own
        for key in iter_keys(hass)
    ):
        errors[CONF_NAME] = "name_taken"
    else:
        return name
    return None


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
        if user_input is not None and (
            name := _free_name(self.hass, user_input, errors)
        ):
            self._name, self._secret, self._user_id = name, new_secret(), user.id
            return await self.async_step_show()
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(_name_schema(), user_input),
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
        if user_input is not None and (
            name := _free_name(self.hass, user_input, errors, subentry.subentry_id)
        ):
            self.hass.config_entries.async_update_subentry(
                self._get_entry(), subentry, title=name
            )
            return self.async_abort(reason=RECONFIGURED)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                _name_schema(), user_input or {CONF_NAME: subentry.title}
            ),
            description_placeholders={
                "url": app_playlist_url(self.hass, str(subentry.data[CONF_KEY_SECRET]))
            },
            errors=errors,
        )
