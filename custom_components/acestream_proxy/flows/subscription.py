"""The playlist subscription subentry flow: a list at a URL, kept current.

The form is checked against the list itself (it downloads, it is a playlist
with channels, its new channels fit the engine entry); the subscription then
imports it at once and refreshes it on its interval (see subscription.py).
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.config_entries import (
    ConfigSubentry,
    SubentryFlowResult,
)
from homeassistant.const import CONF_NAME, CONF_URL
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol

from ..const import (
    CONF_KEEP_REMOVED,
    CONF_REFRESH_HOURS,
    DEFAULT_REFRESH_HOURS,
    MAX_CHANNELS_PER_ENGINE,
    REFRESH_HOURS_RANGE,
)
from ..subscription import EmptyPlaylistError, async_plan, iter_subscriptions
from .common import RECONFIGURED, FormSubentryFlow, async_fetch_list

# Planned as a subscription that has no channel yet.
_NEW: Final = "new subscription"


def _schema() -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_NAME): TextSelector(),
            vol.Required(CONF_URL): TextSelector(
                TextSelectorConfig(type=TextSelectorType.URL)
            ),
            vol.Required(CONF_REFRESH_HOURS, default=DEFAULT_REFRESH_HOURS): vol.All(
                NumberSelector(
                    NumberSelectorConfig(
                        min=REFRESH_HOURS_RANGE[0],
                        max=REFRESH_HOURS_RANGE[1],
                        step=1,
                        mode=NumberSelectorMode.BOX,
                        unit_of_measurement="h",
                    )
                ),
                vol.Coerce(int),
                vol.Range(*REFRESH_HOURS_RANGE),
            ),
            vol.Required(CONF_KEEP_REMOVED, default=False): BooleanSelector(),
        }
    )


class SubscriptionFlow(FormSubentryFlow):
    """Subscribe to a playlist URL, or change a subscription."""

    async def _async_form(
        self, user_input: dict[str, Any] | None, subentry: ConfigSubentry | None
    ) -> SubentryFlowResult:
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {"max": str(MAX_CHANNELS_PER_ENGINE)}
        if user_input is not None:
            name = str(user_input[CONF_NAME]).strip()
            url = str(user_input[CONF_URL]).strip()
            data = {
                CONF_URL: url,
                CONF_REFRESH_HOURS: int(user_input[CONF_REFRESH_HOURS]),
                CONF_KEEP_REMOVED: bool(user_input[CONF_KEEP_REMOVED]),
            }
            self._check_unique(name, url, subentry, errors)
            if not errors and (subentry is None or subentry.data[CONF_URL] != url):
                await self._async_check_list(data, subentry, errors, placeholders)
            if not errors:
                if subentry is None:
                    return self.async_create_entry(title=name, data=data)
                self.hass.config_entries.async_update_subentry(
                    self._get_entry(), subentry, title=name, data=data
                )
                return self.async_abort(reason=RECONFIGURED)
        suggested = user_input or (
            {CONF_NAME: subentry.title, **subentry.data} if subentry else {}
        )
        return self.async_show_form(
            step_id="reconfigure" if subentry else "user",
            data_schema=self.add_suggested_values_to_schema(_schema(), suggested),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _check_unique(
        self,
        name: str,
        url: str,
        subentry: ConfigSubentry | None,
        errors: dict[str, str],
    ) -> None:
        if not name:
            errors[CONF_NAME] = "invalid_name"
        for _, other in iter_subscriptions(self.hass):
            if subentry is not None and other.subentry_id == subentry.subentry_id:
                continue
            if other.title.casefold() == name.casefold():
                errors[CONF_NAME] = "name_taken"
            if other.data[CONF_URL] == url:
                errors[CONF_URL] = "already_subscribed"

    async def _async_check_list(
        self,
        data: dict[str, Any],
        subentry: ConfigSubentry | None,
        errors: dict[str, str],
        placeholders: dict[str, str],
    ) -> None:
        """The list downloads and its new channels fit (all or nothing, as an
        import: later refreshes add what fits)."""
        text = await async_fetch_list(self.hass, data[CONF_URL], errors)
        if text is None:
            return
        try:
            diff = async_plan(
                self.hass,
                self._get_entry(),
                subentry.subentry_id if subentry else _NEW,
                text,
                keep_removed=data[CONF_KEEP_REMOVED],
            )
        except EmptyPlaylistError:
            errors[CONF_URL] = "empty_playlist"
        else:
            if diff.left_out:
                errors["base"] = "too_many_channels"
                placeholders["count"] = str(len(diff.add) + len(diff.left_out))
                placeholders["room"] = str(len(diff.add))
