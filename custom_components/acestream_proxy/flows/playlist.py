"""The playlist import subentry flow: many channels from one M3U playlist."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigSubentryFlow, SubentryFlowResult
from homeassistant.const import CONF_URL
from homeassistant.helpers.selector import (
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import voluptuous as vol

from ..const import CONF_PLAYLIST
from ..playlist import MAX_PLAYLIST_BYTES, TooManyChannelsError, import_channels
from .common import async_fetch_list


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
                text = await async_fetch_list(self.hass, url, errors) or ""
            elif not text.strip():
                errors["base"] = "no_playlist"
            elif len(text.encode()) > MAX_PLAYLIST_BYTES:
                errors["base"] = "too_large"
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
