"""Repair flow: an engine unreachable for long can get a new address here."""

from __future__ import annotations

from typing import Any

from homeassistant import data_entry_flow
from homeassistant.components.repairs import RepairsFlow
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant

from .flows.common import connection_schema, validate_connection


class EngineUnreachableRepairFlow(RepairsFlow):
    """Ask for the engine's address again, check it, update and reload."""

    def __init__(self, entry_id: str) -> None:
        """Repair the entry ``entry_id``."""
        self.entry_id = entry_id

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """The manager passes the issue's data here, not a form's."""
        return await self.async_step_address()

    async def async_step_address(
        self, user_input: dict[str, Any] | None = None
    ) -> data_entry_flow.FlowResult:
        """Same fields and checks as the config flow."""
        entry = self.hass.config_entries.async_get_entry(self.entry_id)
        if entry is None:
            return self.async_abort(reason="entry_removed")
        errors: dict[str, str] = {}
        if user_input is not None:
            version = await validate_connection(self.hass, user_input, errors)
            if version is not None:
                self.hass.config_entries.async_update_entry(
                    entry,
                    data={
                        **entry.data,
                        CONF_HOST: user_input[CONF_HOST],
                        CONF_PORT: int(user_input[CONF_PORT]),
                    },
                )
                await self.hass.config_entries.async_reload(entry.entry_id)
                return self.async_create_entry(data={})
        return self.async_show_form(
            step_id="address",
            data_schema=self.add_suggested_values_to_schema(
                connection_schema(dict(entry.data)), user_input or dict(entry.data)
            ),
            errors=errors,
            description_placeholders={"title": entry.title},
        )


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """The only fixable issue: an unreachable engine."""
    return EngineUnreachableRepairFlow(str((data or {})["entry_id"]))
