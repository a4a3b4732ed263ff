"""The HLS judges of tests/hls_check.py reject what they claim to reject."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from custom_components.acestream_proxy.stream.hls import SegmentWindow
from tests.hls_check import PlaylistChecker, cc_errors

START = datetime(2026, 1, 1, tzinfo=UTC)
PAT = 0x0000
PID = 0x100


def window_with(
    durations: list[float], *, breaks: tuple[int, ...] = ()
) -> SegmentWindow:
    """The real playlist window holding segments of ``durations`` (2 s target)."""
    window = SegmentWindow(2.0, 3)
    for index, duration in enumerate(durations):
        window._publish(b"", duration, index in breaks, window._start_time(START))
    return window


def playlist(window: SegmentWindow) -> str:
    return window.playlist(lambda segment: f"{segment.seq}.ts")


def good_reloads() -> list[str]:
    """Reloads of a live playlist that follow the rules, a discontinuity leaving."""
    durations = [2.0] * 8
    return [
        playlist(window_with(durations[:count], breaks=(1, 5))) for count in range(3, 9)
    ]


def test_a_valid_live_playlist_passes() -> None:
    checker = PlaylistChecker()
    for text in good_reloads():
        assert checker.check(text)
    checker.check_dates()
    assert checker.reloads == 6
    assert checker.discontinuity_seq == 1  # segment 1 left with its discontinuity


def replace_in(text: str, old: str, new: str) -> str:
    assert old in text, text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("broken", "why"),
    [
        (lambda t: t.replace("#EXTM3U\n", ""), "no #EXTM3U first"),
        (lambda t: replace_in(t, "#EXTINF:2.000,", "#EXTINF:5.500,"), "EXTINF over"),
        (lambda t: replace_in(t, "TARGETDURATION:3", "TARGETDURATION:4"), "target"),
        (lambda t: replace_in(t, "MEDIA-SEQUENCE:3", "MEDIA-SEQUENCE:1"), "sequence"),
        (
            lambda t: replace_in(
                t, "DISCONTINUITY-SEQUENCE:1", "DISCONTINUITY-SEQUENCE:0"
            ),
            "the discontinuity sequence moved back",
        ),
        (
            lambda t: replace_in(t, "#EXT-X-DISCONTINUITY\n", ""),
            "a segment lost its discontinuity",
        ),
        (
            lambda t: "\n".join(t.splitlines()[:-3]) + "\n",
            "under three target durations listed after sliding",
        ),
    ],
)
def test_the_playlist_judge_rejects(broken: Callable[[str], str], why: str) -> None:
    """Each rule of RFC 8216 the checker enforces fails a reload that breaks it."""
    reloads = good_reloads()
    checker = PlaylistChecker()
    for text in reloads[:-1]:
        checker.check(text)
    with pytest.raises(AssertionError):
        checker.check(broken(reloads[-1]))


def test_the_date_judge_rejects_a_gap_in_a_continuous_run() -> None:
    window = window_with([2.0, 2.0, 2.0, 2.0])
    text = playlist(window)
    second = window.segments[1].started
    late = (second + timedelta(milliseconds=50)).isoformat(timespec="milliseconds")
    early = second.isoformat(timespec="milliseconds")
    checker = PlaylistChecker()
    checker.check(
        text.replace(early.replace("+00:00", "Z"), late.replace("+00:00", "Z"))
    )
    with pytest.raises(AssertionError):
        checker.check_dates()
    PlaylistChecker().check(text)  # the unbroken one passes both
    fine = PlaylistChecker()
    fine.check(text)
    fine.check_dates()


def packet(
    pid: int, counter: int, *, payload: bool = True, flagged: bool = False
) -> bytes:
    """A TS packet; ``flagged`` sets discontinuity_indicator in an adaptation field."""
    control = (0x10 if payload else 0) | (0x20 if flagged or not payload else 0)
    head = bytes([0x47, pid >> 8, pid & 0xFF, control | counter])
    if control & 0x20:
        adaptation = bytes([1, 0x80 if flagged else 0])
        return head + adaptation + b"\xff" * (184 - len(adaptation))
    return head + bytes([counter]) * 184


def test_the_counter_judge_rejects_a_jump() -> None:
    good = (
        packet(PID, 0) + packet(PID, 1) + packet(PID, 1, payload=False) + packet(PID, 2)
    )
    assert cc_errors(good) == []
    assert cc_errors(packet(PID, 15) + packet(PID, 0)) == []  # wraps
    assert cc_errors(packet(PID, 3) + packet(PID, 3)) == []  # one duplicate
    assert cc_errors(packet(PID, 0) + packet(PID, 2)) == [
        f"PID {PID:#x} at byte 188: 0 then 2"
    ]
    # A packet without payload must repeat the counter.
    assert cc_errors(packet(PID, 4) + packet(PID, 5, payload=False)) == [
        f"PID {PID:#x} at byte 188: 4 then 5"
    ]
    # The same counter with other bytes is not a duplicate but a lost packet.
    assert cc_errors(packet(PAT, 3) + packet(PAT, 3)[:-1] + b"\x00") == [
        "PID 0x0 at byte 188: 3 then 3"
    ]


def test_the_counter_judge_excuses_only_a_flagged_jump_and_keeps_state() -> None:
    assert cc_errors(packet(PID, 0) + packet(PID, 9, flagged=True)) == []
    state: dict[int, tuple[int, bytes]] = {}
    assert cc_errors(packet(PID, 7), state) == []
    assert cc_errors(packet(PID, 9), state) == [f"PID {PID:#x} at byte 0: 7 then 9"]
    assert cc_errors(packet(0x1FFF, 5) + packet(0x1FFF, 1)) == []  # null packets


def test_the_discontinuity_count_judge_rejects_a_lost_discontinuity() -> None:
    """A reload after a discontinuity left the window must count it (6.2.2)."""
    before = playlist(window_with([2.0] * 4, breaks=(1,)))
    after = playlist(window_with([2.0] * 9, breaks=(1,)))
    assert "MEDIA-SEQUENCE:4" in after  # every segment of `before` left
    fine = PlaylistChecker()
    fine.check(before)
    fine.check(after)
    broken = PlaylistChecker()
    broken.check(before)
    with pytest.raises(AssertionError):
        broken.check(
            replace_in(after, "DISCONTINUITY-SEQUENCE:1", "DISCONTINUITY-SEQUENCE:0")
        )
