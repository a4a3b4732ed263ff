"""The options flow: the broadcaster's tunables of an engine entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import ConfigFlowResult, OptionsFlow
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
)
import voluptuous as vol

from ..const import (
    CONF_HLS_SEGMENT,
    CONF_LINGER,
    CONF_MAX_BROADCASTS,
    CONF_MAX_VIEWERS,
    CONF_REPLAY_WINDOW,
    TUNABLES,
)


def _tunable(options: Mapping[str, Any], key: str) -> tuple[vol.Required, vol.All]:
    """A field of the form: the option's value (or its default) within bounds."""
    tunable = TUNABLES[key]
    config = NumberSelectorConfig(
        min=tunable.low, max=tunable.high, step=1, mode=NumberSelectorMode.BOX
    )
    if tunable.unit:
        config["unit_of_measurement"] = tunable.unit
    return (
        vol.Required(key, default=options.get(key, tunable.default)),
        vol.All(
            NumberSelector(config),
            vol.Coerce(int),
            vol.Range(min=tunable.low, max=tunable.high),
        ),
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
            dict(
                (
                    _tunable(options, CONF_LINGER),
                    _tunable(options, CONF_REPLAY_WINDOW),
                    _tunable(options, CONF_MAX_VIEWERS),
                    _tunable(options, CONF_MAX_BROADCASTS),
                    _tunable(options, CONF_HLS_SEGMENT),
                )
            )
        )
        return self.async_show_form(step_id="init", data_schema=schema)
