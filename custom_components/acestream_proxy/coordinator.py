"""Engine health: polls the engine's version, the documented liveness check."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from . import compat
from .const import DOMAIN, LOGGER, UPDATE_INTERVAL_SECONDS
from .stream.engine import EngineClient, EngineError, EngineVersion

# An engine down this long gets a repair issue (it clears itself when back).
REPAIR_AFTER: Final = timedelta(minutes=5)

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

    from .data import AceStreamConfigEntry


class EngineCoordinator(DataUpdateCoordinator[EngineVersion]):
    """Polls one engine; its failures make the engine's entities unavailable.

    An engine that stops answering is logged once, at INFO (log-when-unavailable),
    and its recovery once, at INFO, by DataUpdateCoordinator. An engine going away
    is what failover exists for, so it is not an ERROR in the log; the repair
    issue after REPAIR_AFTER is what asks the user to act.
    """

    config_entry: AceStreamConfigEntry

    def __init__(
        self, hass: HomeAssistant, entry: AceStreamConfigEntry, client: EngineClient
    ) -> None:
        """Poll ``client`` every UPDATE_INTERVAL_SECONDS."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} engine {client.base_url}",
            update_interval=timedelta(seconds=UPDATE_INTERVAL_SECONDS),
        )
        self.client = client
        self.down_since: datetime | None = None

    @property
    def issue_id(self) -> str:
        """Repair issue of this engine being unreachable."""
        return engine_issue_id(self.config_entry.entry_id)

    async def _async_update_data(self) -> EngineVersion:
        try:
            version = await self.client.get_version()
        except EngineError as err:
            now = dt_util.utcnow()
            if self.down_since is None:
                self.down_since = now
            elif now - self.down_since >= REPAIR_AFTER:
                compat.async_create_issue(
                    self.hass,
                    DOMAIN,
                    self.issue_id,
                    config_entry_id=self.config_entry.entry_id,
                    is_fixable=True,
                    severity=ir.IssueSeverity.ERROR,
                    translation_key="engine_unreachable",
                    translation_placeholders={
                        "title": self.config_entry.title,
                        "error": str(err),
                    },
                    data={"entry_id": self.config_entry.entry_id},
                )
            if self.last_update_success:
                if self.data is not None:
                    # Not at setup: Home Assistant says "not ready yet" for that.
                    # The title already names the engine ("AceStream engine host:port").
                    LOGGER.info(
                        "%s is unreachable: %s",
                        self.config_entry.title,
                        err,
                    )
                # Failed already, DataUpdateCoordinator logs no "Error fetching"
                # for it; it still tells the entities (success changed since the
                # refresh began) and logs the recovery.
                self.last_update_success = False
            raise UpdateFailed(str(err)) from err
        self.down_since = None
        # Also after a reload or a new address: that coordinator never saw the
        # outage, but the issue of the one before it may still be open.
        if ir.async_get(self.hass).async_get_issue(DOMAIN, self.issue_id):
            ir.async_delete_issue(self.hass, DOMAIN, self.issue_id)
        return version


def engine_issue_id(entry_id: str) -> str:
    """Repair issue of the engine of ``entry_id`` being unreachable."""
    return f"engine_unreachable_{entry_id}"
