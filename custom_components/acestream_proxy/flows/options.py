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
    DEFAULT_OPTIONS,
    HLS_SEGMENT_RANGE,
    LINGER_RANGE,
    MAX_BROADCASTS_RANGE,
    MAX_VIEWERS_RANGE,
    REPLAY_WINDOW_RANGE,
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


def _tunable(
    options: Mapping[str, Any],
    key: str,
    bounds: tuple[int, int],
    unit: str | None = None,
) -> tuple[vol.Required, vol.All]:
    """A field of the form: the option's value (or its default) within bounds."""
    return (
        vol.Required(key, default=options.get(key, DEFAULT_OPTIONS[key])),
        _number(*bounds, unit),
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
                    _tunable(options, CONF_LINGER, LINGER_RANGE, "s"),
                    _tunable(options, CONF_REPLAY_WINDOW, REPLAY_WINDOW_RANGE, "s"),
                    _tunable(options, CONF_MAX_VIEWERS, MAX_VIEWERS_RANGE),
                    _tunable(options, CONF_MAX_BROADCASTS, MAX_BROADCASTS_RANGE),
                    _tunable(options, CONF_HLS_SEGMENT, HLS_SEGMENT_RANGE, "s"),
                )
            )
        )
        return self.async_show_form(step_id="init", data_schema=schema)
