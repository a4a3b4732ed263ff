"""A refresh is a diff: matched by tvg-id, then name, then id; what it changes,
keeps and refuses (hypothesis for the invariants)."""

from __future__ import annotations

from dataclasses import replace
import itertools

from hypothesis import given, settings, strategies as st

from custom_components.acestream_proxy.channel import Channel
from custom_components.acestream_proxy.listdiff import ListDiff, diff_channels
from custom_components.acestream_proxy.stream.engine import ContentKind, ContentRef

SUB = "sub1"


def ref(number: int) -> ContentRef:
    return ContentRef(ContentKind.CONTENT_ID, f"{number:040x}")


def ch(name: str, number: int, tvg: str | None = None, **kw: str) -> Channel:
    return Channel(name, ref(number), tvg_id=tvg, **kw)


def stored(*channels: Channel) -> dict[str, Channel]:
    """A subscription's channels as stored, by made-up subentry ids."""
    return {f"s{i}": replace(c, subscription=SUB) for i, c in enumerate(channels)}


def apply(
    current: dict[str, Channel], diff: ListDiff, counter: itertools.count[int]
) -> dict[str, Channel]:
    """The subscription's channels after the diff (as the refresh applies it)."""
    after = dict(current)
    for subentry_id in diff.remove:
        del after[subentry_id]
    for subentry_id, channel in diff.update:
        assert subentry_id in current
        after[subentry_id] = channel
    for channel in diff.add:
        after[f"n{next(counter)}"] = channel
    return after


def run(
    current: dict[str, Channel],
    source: list[Channel],
    *,
    taken: set[ContentRef] | None = None,
    keep: bool = False,
    room: int = 1500,
) -> ListDiff:
    return diff_channels(
        list(current.items()),
        source,
        subscription=SUB,
        taken=taken or set(),
        keep_removed=keep,
        room=room,
    )


def test_rename_and_id_change_keep_the_channel() -> None:
    """tvg-id holds through a rename and a new id at once; without a tvg-id the
    name holds through a new id, and the id through a rename."""
    current = stored(
        ch("Sport 1", 1, "sport1"), ch("News", 2), ch("Films", 3), ch("Gone", 4)
    )
    source = [
        ch("Sport One HD", 11, "sport1"),
        ch("News", 12),
        ch("Cinema", 3),
        ch("New", 5),
    ]
    diff = run(current, source)
    assert [(sid, c.name, c.ref) for sid, c in diff.update] == [
        ("s0", "Sport One HD", ref(11)),
        ("s1", "News", ref(12)),
        ("s2", "Cinema", ref(3)),
    ]
    assert all(c.subscription == SUB for _, c in diff.update)
    assert [c.name for c in diff.add] == ["New"]
    assert diff.add[0].subscription == SUB
    assert diff.remove == ["s3"]
    assert diff.counts() == {
        "added": 1,
        "updated": 3,
        "removed": 1,
        "kept": 0,
        "unchanged": 0,
        "conflicts": 0,
        "left_out": 0,
    }


def test_gone_channels_kept_when_asked() -> None:
    current = stored(ch("A", 1), ch("B", 2))
    diff = run(current, [ch("A", 1)], keep=True)
    assert (diff.remove, diff.kept, diff.unchanged, diff.touched) == ([], ["s1"], 1, 0)


def test_ids_other_channels_play_are_refused() -> None:
    """A new channel or a change to an id a hand-added channel (or a kept one)
    plays is refused; the channel stays as it was."""
    current = stored(ch("A", 1), ch("B", 2), ch("Kept", 3))
    source = [ch("A", 9), ch("B", 3), ch("C", 9), ch("D", 10)]
    diff = run(current, source, taken={ref(9)}, keep=True)
    assert diff.update == []
    assert sorted(c.name for c in diff.conflicts) == ["A", "B", "C"]
    assert [c.name for c in diff.add] == ["D"]
    assert diff.kept == ["s2"]


def test_a_refused_change_can_refuse_another() -> None:
    """A keeps id 1 (its new id is taken), so B cannot move to id 1."""
    current = stored(ch("A", 1), ch("B", 2))
    diff = run(current, [ch("A", 9), ch("B", 1)], taken={ref(9)})
    assert diff.update == []
    assert [c.name for c in diff.conflicts] == ["A", "B"]
    assert diff.held == ["s0", "s1"]


def test_swapped_ids_are_two_updates() -> None:
    current = stored(ch("A", 1, "a"), ch("B", 2, "b"))
    diff = run(current, [ch("A", 2, "a"), ch("B", 1, "b")])
    assert [(sid, c.ref) for sid, c in diff.update] == [("s0", ref(2)), ("s1", ref(1))]


def test_repeated_keys_are_no_keys() -> None:
    """A tvg-id the source gives twice (its mistake) pairs nothing: the names
    do; a name it gives twice neither: the ids do."""
    current = stored(ch("A", 1, "x"), ch("B", 2, "x"))
    diff = run(current, [ch("A", 1, "x"), ch("B", 3, "x")])
    assert diff.unchanged == 1
    assert [(sid, c.ref) for sid, c in diff.update] == [("s1", ref(3))]
    current = stored(ch("A", 1), ch("B", 2))
    diff = run(current, [ch("A", 2), ch("A", 3)])
    assert [(sid, c.name) for sid, c in diff.update] == [("s1", "A")]
    assert [c.ref for c in diff.add] == [ref(3)]
    assert diff.remove == ["s0"]


def test_room_leaves_out_what_does_not_fit() -> None:
    """Near MAX_CHANNELS_PER_ENGINE: updates and removals apply, new channels
    are added in list order while room lasts (removals make room), the rest
    is left out and counted."""
    current = stored(ch("A", 1), ch("B", 2))
    source = [ch("A", 11), ch("C", 3), ch("D", 4), ch("E", 5)]
    diff = run(current, source, room=1)
    assert [c.name for c in diff.add] == ["C", "D"]
    assert [c.name for c in diff.left_out] == ["E"]
    assert diff.remove == ["s1"]
    assert [sid for sid, _ in diff.update] == ["s0"]


def _big(count: int) -> list[Channel]:
    return [
        ch(
            f"Channel {n}",
            n,
            f"tvg{n}",
            group=f"Group {n % 20}",
            logo=f"http://l/{n}.png",
        )
        for n in range(1, count + 1)
    ]


def test_ten_changes_in_two_thousand_touch_ten() -> None:
    """A 2,000-channel list with 3 renames, 3 new ids, 2 removals and 2
    additions: the diff touches those 10 and nothing else."""
    source = _big(2000)
    current = stored(*source)
    edited = list(source)
    for n in (10, 20, 30):
        edited[n] = replace(edited[n], name=f"Renamed {n}")
    for n in (40, 50, 60):
        edited[n] = replace(edited[n], ref=ref(100_000 + n))
    del edited[1500:1502]
    edited += [ch("Extra 1", 200_001, "x1"), ch("Extra 2", 200_002, "x2")]
    diff = run(current, edited, room=1500 - 2000 + 1500)
    assert diff.touched == 10
    assert (len(diff.update), len(diff.remove), len(diff.add)) == (6, 2, 2)
    assert diff.unchanged == 1992


_NAMES = st.sampled_from(["A", "B", "C", "D", "E", "F"])
_SRC = st.builds(
    ch,
    _NAMES,
    st.integers(1, 12),
    st.none() | st.sampled_from(["t1", "t2", "t3", "t4"]),
)


@settings(max_examples=400)
@given(
    st.lists(_SRC, max_size=8, unique_by=lambda c: c.ref),
    st.lists(_SRC, max_size=8, unique_by=lambda c: c.ref),
    st.sets(st.integers(1, 12).map(ref), max_size=3),
    st.booleans(),
    st.integers(0, 8),
)
def test_a_refresh_never_breaks_the_rules(
    before: list[Channel],
    source: list[Channel],
    taken: set[ContentRef],
    keep: bool,
    room: int,
) -> None:
    """Whatever the lists: ids stay unique and clear of other channels'; each
    of the subscription's channels is updated, unchanged, removed or kept
    exactly once; no source channel is lost without a reason; a second refresh
    from the same source changes nothing."""
    current = stored(*(c for c in before if c.ref not in taken))
    diff = run(current, source, taken=taken, keep=keep, room=room)
    sids = [sid for sid, _ in diff.update] + diff.remove + diff.kept + diff.held
    assert len(sids) == len(set(sids))
    assert len(sids) + diff.unchanged == len(current)
    after = apply(current, diff, itertools.count())
    refs = [c.ref for c in after.values()]
    assert len(refs) == len(set(refs))
    assert not set(refs) & taken
    assert len(diff.add) <= room + len(diff.remove)
    accounted = {c.ref for c in after.values()} | {
        c.ref for c in diff.conflicts + diff.left_out
    }
    assert {c.ref for c in source} <= accounted
    again = run(after, source, taken=taken, keep=keep, room=room - len(diff.add))
    assert again.update == []
    assert again.remove == []
    assert [c.ref for c in again.add] == [
        c.ref for c in diff.left_out[: len(again.add)]
    ]
