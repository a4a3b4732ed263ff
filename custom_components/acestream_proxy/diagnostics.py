"""Config entry diagnostics: engine state and broadcasts, addresses redacted."""

from __future__ import annotations

from dataclasses import asdict
import ipaddress
import re
from typing import TYPE_CHECKING, Any, Final

from homeassistant.components.diagnostics import REDACTED, async_redact_data
from homeassistant.const import CONF_HOST

from .const import DOMAIN, SUBENTRY_ACCESS_KEY, SUBENTRY_CHANNEL
from .data import get_hub
from .playlist import iter_channels

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

# Inside any text (error messages carry "engine at http://host:port"): URLs of any
# scheme, host:port pairs, and anything that parses as an IP address.
_URL: Final = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_HOST_PORT: Final = re.compile(
    r"(?<![\w.:-])(?:\[[0-9a-fA-F:.]+\]|\d{1,3}(?:\.\d{1,3}){3}"
    r"|(?:[a-zA-Z0-9-]+\.)*[a-zA-Z][a-zA-Z0-9-]*):\d{2,5}\b"
)
_IP_CANDIDATE: Final = re.compile(r"[0-9a-fA-F:.]*[:.][0-9a-fA-F:.]+")


def _redact_ip(match: re.Match[str]) -> str:
    text = match.group(0)
    try:
        ipaddress.ip_address(text.strip(".:"))
    except ValueError:
        return text
    return REDACTED


def redact_text(text: str, hosts: set[str]) -> str:
    """A string with every URL, host:port, IP and known host name replaced."""
    text = _URL.sub(REDACTED, text)
    text = _HOST_PORT.sub(REDACTED, text)
    text = _IP_CANDIDATE.sub(_redact_ip, text)
    for host in sorted(hosts, key=len, reverse=True):
        text = re.sub(rf"(?<![\w.-]){re.escape(host)}(?![\w-])", REDACTED, text)
    return text


def _redact_values(data: Any, hosts: set[str]) -> Any:
    if isinstance(data, str):
        return redact_text(data, hosts)
    if isinstance(data, dict):
        return {key: _redact_values(value, hosts) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_redact_values(value, hosts) for value in data]
    return data


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
                "phase": b.phase.value,
                "outage": asdict(b.outage) if b.outage else None,
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
                    "target_duration": item.hls.segmenter.target,
                    "cuts": asdict(item.hls.segmenter.stats),
                }
                if item.hls
                else None,
            }
        )
    # Only this engine's failures: those of its broadcasts and channels.
    mine = {
        item.broadcaster.infohash
        for item in hub.broadcasts.values()
        if item.entry_id == entry.entry_id
    } | {
        hub.infohash_of(channel.ref)
        for owner, _, channel in iter_channels(hass)
        if owner.entry_id == entry.entry_id
    }
    hosts = {
        str(other.data[CONF_HOST])
        for other in hass.config_entries.async_entries(DOMAIN)
        if CONF_HOST in other.data
    }
    redacted = async_redact_data(
        {
            "entry": {
                "title": entry.title,
                "data": dict(entry.data),
                "options": dict(entry.options),
                # Access keys are secrets: only how many there are.
                "channels": [
                    dict(sub.data)
                    for sub in entry.subentries.values()
                    if sub.subentry_type == SUBENTRY_CHANNEL
                ],
                "access_keys": sum(
                    1
                    for sub in entry.subentries.values()
                    if sub.subentry_type == SUBENTRY_ACCESS_KEY
                ),
            },
            "engine": {
                "base_url": data.client.base_url,
                "reachable": coordinator.last_update_success,
                "version": asdict(coordinator.data) if coordinator.data else None,
            },
            "broadcasts": broadcasts,
            "failures": {
                infohash: failure
                for infohash, failure in hub.failures.items()
                if infohash in mine
            },
        },
        TO_REDACT,
    )
    return dict(_redact_values(redacted, hosts))
