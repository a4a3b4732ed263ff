"""Config entry diagnostics: engine state and broadcasts, addresses redacted."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_HOST

from .hub import get_hub

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

    from .data import AceStreamConfigEntry

TO_REDACT = {
    CONF_HOST,
    "playback_url",
    "stat_url",
    "command_url",
    "logo",
    "base_url",
    "title",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: AceStreamConfigEntry
) -> dict[str, Any]:
    """What a bug report needs, without addresses, tokens or signed URLs."""
    hub = get_hub(hass)
    data = entry.runtime_data
    coordinator = data.coordinator
    broadcasts = []
    for infohash, item in hub.broadcasts.items():
        if item.entry_id != entry.entry_id:
            continue
        b = item.broadcaster
        broadcasts.append(
            {
                "infohash": infohash,
                "name": b.name,
                "state": b.state.value,
                "viewers": b.viewer_count,
                "bitrate": round(b.bitrate),
                "config": asdict(b.config),
                "stats": asdict(b.stats),
                "engine_stats": asdict(item.engine_stats)
                if item.engine_stats
                else None,
                "session": asdict(b.session) if b.session else None,
                "ring": {"chunks": len(b.ring), "bytes": b.ring.size},
                "hls": {
                    "segments": len(item.hls.segmenter.segments),
                    "next_seq": item.hls.segmenter.next_seq,
                    "clients": item.hls.active_clients,
                }
                if item.hls
                else None,
            }
        )
    return async_redact_data(
        {
            "entry": {
                "title": entry.title,
                "data": dict(entry.data),
                "options": dict(entry.options),
                "channels": [dict(sub.data) for sub in entry.subentries.values()],
            },
            "engine": {
                "base_url": data.client.base_url,
                "reachable": coordinator.last_update_success,
                "version": asdict(coordinator.data) if coordinator.data else None,
            },
            "broadcasts": broadcasts,
            "failures": dict(hub.failures),
        },
        TO_REDACT,
    )
