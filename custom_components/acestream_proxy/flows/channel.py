"""The channel subentry flow: add or edit one channel of an engine entry."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from homeassistant.config_entries import (
    ConfigSubentry,
    SubentryFlowResult,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol

from ..channel import Channel, channel_unique_id, ref_from_link
from ..const import (
    CONF_CHANNEL_GROUP,
    CONF_CHANNEL_ID,
    CONF_CHANNEL_KIND,
    CONF_CHANNEL_LOGO,
    CONF_CHANNEL_NAME,
    DOMAIN,
    MAX_CHANNELS_PER_ENGINE,
    SUBENTRY_CHANNEL,
)
from ..playlist import channel_room
from ..stream.engine import ContentKind, ContentRef
from .common import RECONFIGURED, FormSubentryFlow


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


class ChannelFlow(FormSubentryFlow):
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
        return await super().async_step_user(user_input)

    async def _async_form(
        self, user_input: dict[str, Any] | None, subentry: ConfigSubentry | None
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
                    # What the form does not show (the source's tvg-id, its
                    # subscription) stays as it was.
                    data = replace(
                        Channel.from_data(subentry.data)
                        if subentry
                        else Channel(name, ref),
                        name=name,
                        ref=ref,
                        group=str(user_input.get(CONF_CHANNEL_GROUP, "")).strip()
                        or None,
                        logo=str(user_input.get(CONF_CHANNEL_LOGO, "")).strip() or None,
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
            step_id="reconfigure" if subentry else "user",
            data_schema=self.add_suggested_values_to_schema(
                _channel_schema(), suggested
            ),
            errors=errors,
        )
