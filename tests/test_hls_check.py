"""The HLS judges of tests/hls_check.py reject what they claim to reject."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from custom_components.acestream_proxy.stream.hls import SegmentWindow
from custom_components.acestream_proxy.stream.hls.window import Part, Partial
from tests.hls_check import PlaylistChecker, cc_errors

START = datetime(2026, 1, 1, tzinfo=UTC)
PAT = 0x0000
PID = 0x100


def window_with(
    durations: list[float], *, breaks: tuple[int, ...] = ()
) -> SegmentWindow:
    """The real playlist window holding segments of ``durations`` (2 s target)."""
    window = SegmentWindow(2.0, 3)
    window.next_seq = 0  # numbered from 0 here, for readable sequence numbers
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


def ll_window(count: int, breaks: tuple[int, ...] = ()) -> SegmentWindow:
    """The real window with ``count`` 2 s segments of four parts, and two parts of
    the segment being cut."""
    window = SegmentWindow(2.0, 3)
    window.next_seq = 0  # numbered from 0 here, for readable sequence numbers
    quarter = [Part(b"", 0.5, index == 0) for index in range(4)]
    for index in range(count):
        started = window._start_time(START)
        window._publish(b"", 2.0, index in breaks, started, tuple(quarter))
    window._publish_partial(Partial(False, window._start_time(START), quarter[:2]))
    return window


def ll_playlist(window: SegmentWindow) -> str:
    return window.playlist(
        lambda segment: f"{segment.seq}.ts", lambda seq, part: f"{seq}.{part}.ts"
    )


def test_a_valid_low_latency_playlist_passes() -> None:
    checker = PlaylistChecker()
    for count in range(1, 6):
        text = ll_playlist(ll_window(count))
        assert checker.check(text)
        assert [p.uri for p in checker.open_parts] == [f"{count}.0.ts", f"{count}.1.ts"]
        assert checker.hint == f"{count}.2.ts"
    # Parts only for the last two complete segments (and the one being cut).
    assert text.count("#EXT-X-PART:") == 2 * 4 + 2
    assert checker.parts[(4, 0)].independent
    assert not checker.parts[(4, 1)].independent


@pytest.mark.parametrize(
    ("broken", "why"),
    [
        (
            lambda t: replace_in(t, "DURATION=0.500,", "DURATION=0.600,"),
            "a part over the part target (and its segment's parts no longer sum)",
        ),
        (
            lambda t: replace_in(t, "PART-TARGET=0.500", "PART-TARGET=0.400"),
            "parts over a smaller part target",
        ),
        (
            lambda t: replace_in(t, "PART-HOLD-BACK=3.000", "PART-HOLD-BACK=0.900"),
            "a part hold back under twice the part target",
        ),
        (
            lambda t: replace_in(t, "CAN-BLOCK-RELOAD=YES,", ""),
            "parts without blocking reloads",
        ),
        (
            lambda t: t.replace("#EXT-X-PART-INF:PART-TARGET=0.500\n", ""),
            "parts without a part target",
        ),
        (
            lambda t: replace_in(t, "#EXTINF:2.000,", "#EXTINF:1.900,"),
            "parts that do not make their segment",
        ),
        (
            lambda t: replace_in(
                t,
                ',INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.500,URI="4.1',
                '\n#EXT-X-PART:DURATION=0.500,URI="4.1',
            ),
            "a part that changed from one reload to the next",
        ),
        (
            lambda t: t + '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="x.ts"\n',
            "two part hints",
        ),
        (
            lambda t: t + '#EXT-X-PART:DURATION=0.500,URI="5.9.ts"\n',
            "a part after the hint",
        ),
    ],
)
def test_the_part_judge_rejects(broken: Callable[[str], str], why: str) -> None:
    """Each RFC 8216bis rule on parts the checker enforces fails a reload."""
    checker = PlaylistChecker()
    checker.check(ll_playlist(ll_window(4)))
    with pytest.raises(AssertionError):
        checker.check(broken(ll_playlist(ll_window(5))))


def ll_reload(count: int, *, hinted: bool = True, breaks: bool = False) -> str:
    """``count`` whole segments; then the next one hinted before its first part
    (``breaks``: after a discontinuity), or nothing after the last (``hinted``
    False, the way a low-latency playlist must not end)."""
    window = ll_window(count)
    window.partial = Partial(breaks, START) if hinted else None
    return ll_playlist(window)


def test_the_reload_judge_passes_what_hls_js_accepts() -> None:
    """A segment hinted, then its parts, then whole; then one hinted after a
    discontinuity, and whole."""
    checker = PlaylistChecker()
    checker.check(ll_reload(3))
    checker.check(ll_playlist(ll_window(3)))
    checker.check(ll_reload(4))
    checker.check(ll_reload(5, breaks=True))
    assert checker.hint == "5.0.ts"
    assert checker.slots[5] == (None, 1)


@pytest.mark.parametrize(
    ("first", "then", "why"),
    [
        (
            ll_reload(3, hinted=False),
            ll_reload(4),
            "media sequence mismatch 3",  # hls.js took segment 2 for the open one
        ),
        (
            ll_reload(3),
            ll_playlist(ll_window(4, breaks=(3,))),
            "discontinuity sequence mismatch 3",  # hinted continuous, then not
        ),
        (
            ll_reload(3, breaks=True),
            ll_playlist(ll_window(4)),
            "discontinuity sequence mismatch 3",  # hinted after one, then not
        ),
    ],
)
def test_the_reload_judge_rejects(first: str, then: str, why: str) -> None:
    """What hls.js (1.6) stops on, from one reload to the next."""
    checker = PlaylistChecker()
    checker.check(first)
    with pytest.raises(AssertionError, match=why):
        checker.check(then)


def test_the_reload_judge_rejects_changed_bytes() -> None:
    text = ll_playlist(ll_window(3))
    served = {"2.ts": b"ab", "2.0.ts": b"a", "3.1.ts": b"d"}
    checker = PlaylistChecker()
    checker.check(text, served.get)
    checker.check(text, served.get)
    with pytest.raises(AssertionError, match=r"3\.1\.ts changed"):
        checker.check(text, {**served, "3.1.ts": b"e"}.get)
