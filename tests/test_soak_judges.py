"""The soak's judges fail on broken input (script/soak.py): each one is shown a run
it must reject, beside one it must pass."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
import importlib
from pathlib import Path
import sys
from types import ModuleType
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.event import async_call_later, async_track_time_interval
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "script"
A = "a0" * 20
B = "b1" * 20


@pytest.fixture(name="soak")
def soak_module() -> ModuleType:
    """script/soak.py, imported as the soak runs it (its folder on sys.path)."""
    if str(SCRIPT) not in sys.path:
        sys.path.insert(0, str(SCRIPT))
    return importlib.import_module("soak")


def packet(pid: int, *, keyframe: bool = False) -> bytes:
    """One 188-byte TS packet; a keyframe carries random_access_indicator."""
    head: bytes
    head = bytes([0x47, 0x40 | (pid >> 8), pid & 0xFF])
    if keyframe:
        # adaptation field + payload, field length 7, flags: random access.
        return head + bytes([0x30, 7, 0x40]) + bytes(6) + b"\xff" * (188 - 12)
    return head + bytes([0x10]) + b"\xff" * 184


def viewer(soak: ModuleType, data: bytes) -> Any:
    """A zapper that just joined and got ``data``, accounted as the soak does."""
    result = soak.ViewerResult("zapper 1", A, "ts")
    result.opened = asyncio.get_running_loop().time()
    soak.account(result, data)
    return result


async def test_a_zapper_with_only_null_packets_has_no_video(soak: ModuleType) -> None:
    """A join that sends only null packets and tables gives no picture: flagged,
    though its bytes and the gap judge (15 s over a 3-10 s watch) would pass it."""
    nothing = viewer(soak, packet(0x1FFF) * 50 + packet(0) + packet(0x1000))
    assert nothing.video_bytes > 0  # tables count as bytes that are not null
    assert soak.without_video([nothing], 3.0) == (["zapper 1: no keyframe"], [])
    # Video packets with no random access point are no start either.
    no_key = viewer(soak, packet(0x100) * 50)
    assert no_key.video_bytes > 0
    assert soak.without_video([no_key], 3.0) == (["zapper 1: no keyframe"], [])
    watched = viewer(soak, packet(0x1FFF) + packet(0x100, keyframe=True))
    assert watched.first_keyframe is not None
    assert soak.without_video([watched], 3.0) == ([], [])


async def test_a_late_first_keyframe_is_flagged(soak: ModuleType) -> None:
    """The bound holds: a first keyframe later than it fails the viewer."""
    late = viewer(soak, packet(0x100, keyframe=True))
    assert late.first_keyframe is not None
    late.opened = late.first_keyframe - 5.0
    (text,), _ = soak.without_video([late], 3.0)
    assert text.startswith("zapper 1: first keyframe after 5.0 s")
    # Joined into a stall: excused, and said so; a fault elsewhere excuses nothing.
    joined = late.opened
    stall = [(joined + 1.0, joined + 8.0)]
    assert soak.without_video([late], 3.0, stall) == ([], ["zapper 1"])
    earlier = [(joined - 20.0, joined - 3.0)]
    assert soak.without_video([late], 3.0, earlier)[0] == [text]


def test_fault_windows_count_from_kick_off(soak: ModuleType) -> None:
    """The engines' faults are scheduled at kick-off, and their windows count from
    there, however long Home Assistant took to start before it (in a clean
    checkout it installs its components first): a zapper that joins a second
    before the first stall is excused; one that joins between faults is not."""
    kickoff = 1000.0
    windows = soak.fault_windows(kickoff)
    first = soak.parse_faults(soak.ENGINE_FAULTS)[0]
    assert min(windows) == (
        kickoff + first.at,
        kickoff + first.at + first.duration + soak.FAULT_RECOVERY,
    )
    blind = soak.ViewerResult("zapper 2", B, "ts", opened=kickoff + first.at - 1.0)
    assert soak.without_video([blind], soak.FIRST_VIDEO, windows) == (
        [],
        ["zapper 2"],
    )
    quiet = max(end for _, end in windows if end < kickoff + soak.FAILOVER_AT)
    blind.opened = quiet + 0.5
    assert not any(
        s < blind.opened + soak.FIRST_VIDEO and blind.opened < e for s, e in windows
    )
    assert soak.without_video([blind], soak.FIRST_VIDEO, windows) == (
        ["zapper 2: no keyframe"],
        [],
    )


def test_event_balance_flags_a_second_stop_and_a_stop_with_no_start(
    soak: ModuleType,
) -> None:
    """One broadcast: one start, one end; anything else is named."""
    good = [
        (1.0, "stream_started", A, 1),
        (2.0, "viewer_left", A, 1),
        (3.0, "stream_stopped", A, 1),
        (4.0, "stream_started", A, 2),  # the same content again: a new broadcast
        (5.0, "stream_stopped", A, 2),
        (6.0, "stream_failed", B, 3),  # never played (not MPEG-TS): may only fail
    ]
    assert soak.balance(good) == (2, 3, [])

    _, _, twice = soak.balance([*good, (7.0, "stream_stopped", A, 2)])
    assert twice == ["a0a0a0a0 stream_stopped (t=7s): a second end"]

    _, _, no_start = soak.balance([(1.0, "stream_stopped", A, 9)])
    assert no_start == ["a0a0a0a0 stream_stopped (t=1s): stopped with no start"]

    _, _, unknown = soak.balance([(1.0, "stream_failed", B, None)])
    assert unknown == ["b1b1b1b1 stream_failed (t=1s) for no broadcast the hub had"]

    _, _, restarted = soak.balance(
        [(1.0, "stream_started", A, 1), (2.0, "stream_started", A, 1)]
    )
    assert restarted[0] == "a0a0a0a0 stream_started (t=2s): started again"
    assert restarted[1] == "a0a0a0a0 never ended"


def test_non_ts_failure_must_be_alone(soak: ModuleType) -> None:
    """Another broadcast failing beside the non-TS one breaks "alone"."""
    events = [(30.0, "stream_failed", B, 1), (31.0, "stream_stopped", A, 2)]
    assert soak.failed_beside(events, B) == []
    assert soak.failed_beside([*events, (32.0, "stream_failed", A, 3)], B) == [
        "a0a0a0a0 stream_failed (t=32s)"
    ]


async def test_nothing_left_sees_timers_of_home_assistant_helpers(
    hass: HomeAssistant, soak: ModuleType
) -> None:
    """Timers scheduled through async_call_later and async_track_time_interval
    (a HassJob behind Home Assistant's own callback) count as ours."""

    def refresh(*_: Any) -> None:
        """Stands for a function of the integration."""

    refresh.__module__ = "custom_components.acestream_proxy.hub"
    refresh.__qualname__ = "StreamHub.refresh"

    def other(*_: Any) -> None:
        """Somebody else's."""

    assert soak.our_timers() == []
    cancel_other = async_call_later(hass, 300, other)
    assert soak.our_timers() == []
    cancel_later = async_call_later(hass, 300, refresh)
    assert soak.our_timers() == ["StreamHub.refresh"]
    cancel_later()
    cancel_every = async_track_time_interval(hass, refresh, timedelta(minutes=5))
    assert soak.our_timers() == ["StreamHub.refresh"]
    cancel_every()
    handle = hass.loop.call_later(300, refresh)
    assert soak.our_timers() == ["StreamHub.refresh"]
    handle.cancel()
    assert soak.our_timers() == []
    # What was there before the match (e.g. periodic discovery) is no leftover.
    cancel_every = async_track_time_interval(hass, refresh, timedelta(minutes=1))
    before = Counter(soak.our_timers())
    assert soak.left_over(before) == []
    cancel_later = async_call_later(hass, 2, refresh)
    assert soak.left_over(before) == ["StreamHub.refresh"]
    cancel_later()
    cancel_every()
    cancel_other()
