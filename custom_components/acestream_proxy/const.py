"""Constants for the AceStream Proxy integration."""

from __future__ import annotations

import logging
from typing import Final, NamedTuple

DOMAIN: Final = "acestream_proxy"
LOGGER = logging.getLogger(__package__)

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 6878

# Engine state is cheap to read; 30 s matches the engine pool's health cadence.
UPDATE_INTERVAL_SECONDS: Final = 30

CONF_LINGER: Final = "linger"
CONF_REPLAY_WINDOW: Final = "replay_window"
CONF_MAX_VIEWERS: Final = "max_viewers"
CONF_MAX_BROADCASTS: Final = "max_broadcasts"
CONF_HLS_SEGMENT: Final = "hls_segment"

DEFAULT_LINGER: Final = 30
# 2 s HLS segments: AceStream broadcasts put a keyframe every 1-2 s, so a segment is
# one or two keyframe intervals; the playlist target is then 3 s (segment plus
# half, at least 1 s), which still fits keyframe intervals up to about 3.4 s
# without a cut between keyframes. hls.js and Apple's players start three target
# durations (9 s) behind the live edge, which the default 10 s replay window
# already holds, so the first playlist of a broadcast somebody watches lets them
# start at once. make bench's zap table measures the choice: 3 s segments (4 s
# with a 2 s GOP, target 5 s) start later (the window holds less than three
# targets) and play about 4 s further behind. Apple's 6 s recommendation is about
# CDN load, which a proxy on the LAN does not have; Home Assistant's own stream
# component cuts 2 s segments as well.
DEFAULT_HLS_SEGMENT: Final = 2


class Tunable(NamedTuple):
    """An option of the options flow: its default, bounds and unit."""

    default: int
    low: int
    high: int
    unit: str | None = None


TUNABLES: Final = {
    CONF_LINGER: Tunable(DEFAULT_LINGER, 0, 3600, "s"),
    CONF_REPLAY_WINDOW: Tunable(10, 2, 60, "s"),
    # A broadcast can serve thousands (make bench measures 2,000 at 8 Mbit/s).
    CONF_MAX_VIEWERS: Tunable(50, 1, 5000),
    CONF_MAX_BROADCASTS: Tunable(10, 1, 100),
    CONF_HLS_SEGMENT: Tunable(DEFAULT_HLS_SEGMENT, 1, 10, "s"),
}
DEFAULT_OPTIONS: Final = {key: tunable.default for key, tunable in TUNABLES.items()}

# From 2026.7 Home Assistant adds no more enabled entities to a config entry that
# has 10,000, and only logs a warning. A channel has 6 enabled entities (5
# sensors and a stop button), an engine 4, each ad-hoc broadcast 6 (at most
# TUNABLES[CONF_MAX_BROADCASTS].high = 100 at once) and each access key 2: 1,500 channels
# (9,000 entities) leave room for the rest. Adding past it is refused, on every
# release, so no channel ever lacks its entities.
MAX_CHANNELS_PER_ENGINE: Final = 1500

URL_PREFIX: Final = "/api/acestream_proxy"

SUBENTRY_CHANNEL: Final = "channel"
SUBENTRY_PLAYLIST: Final = "playlist"
SUBENTRY_ACCESS_KEY: Final = "access_key"
SUBENTRY_SUBSCRIPTION: Final = "subscription"

# A subscription: the list's URL (CONF_URL), how often it is refreshed, and
# whether channels gone from it are kept.
CONF_REFRESH_HOURS: Final = "refresh_hours"
CONF_KEEP_REMOVED: Final = "keep_removed"
DEFAULT_REFRESH_HOURS: Final = 24
REFRESH_HOURS_RANGE: Final = (1, 168)
# Failed refreshes in a row before a repair issue says so.
FAILURES_FOR_REPAIR: Final = 3

CONF_KEY_SECRET: Final = "secret"
CONF_KEY_USER_ID: Final = "user_id"

CONF_CHANNEL_NAME: Final = "name"
CONF_CHANNEL_ID: Final = "content"
CONF_CHANNEL_KIND: Final = "kind"
CONF_CHANNEL_GROUP: Final = "group"
CONF_CHANNEL_LOGO: Final = "logo"
# The source playlist's own names for the channel, kept for IPTV apps' guides.
CONF_CHANNEL_TVG_ID: Final = "tvg_id"
CONF_CHANNEL_TVG_NAME: Final = "tvg_name"
# The source playlist's guide (url-tvg), comma-separated as in its header.
CONF_CHANNEL_GUIDE: Final = "guide"
# The subscription (subentry id) that keeps the channel current; hand-added and
# one-off imported channels have none, and a refresh never touches them.
CONF_CHANNEL_SUBSCRIPTION: Final = "subscription"
CONF_PLAYLIST: Final = "playlist"

EVENT_TYPE: Final = "acestream_proxy_event"
