"""HTTP views: one per URL shape, each signing the requester in as its first step.

- ``stream/...``: the live MPEG-TS of a broadcast (stream.py);
- ``hls/...``: its HLS playlist and segments (hls.py);
- ``playlist.m3u``: the channels, as M3U (playlist.py).

Each shape answers under the prefix to a Home Assistant user (bearer token or
signed path) and under ``key/{key}/`` to an app's access key (auth.py).
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant

from .hls import HlsView
from .playlist import PlaylistView
from .stream import StreamView


def async_register_views(hass: HomeAssistant) -> None:
    """Register the views once (views cannot be unregistered)."""
    for view in (StreamView, HlsView, PlaylistView):
        for url in view.urls:
            hass.http.register_view(view(url))
