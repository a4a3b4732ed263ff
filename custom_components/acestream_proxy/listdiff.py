"""A subscription's refresh as a diff of channel lists (no Home Assistant imports).

The channels a subscription added are matched to the source's channels by the
source's tvg-id, then by name, then by what they play: a match is the same
channel (its subentry, entities and automations stay), updated in place when
its id, name, logo or group changed. Source channels left unmatched are new;
subscription channels left unmatched are gone from the source, removed or kept
as the subscription says. Channels of no subscription (added by hand, imported
once) and of other subscriptions are never in the diff.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass, field, replace

from .channel import Channel
from .stream.engine import ContentRef


@dataclass(slots=True)
class ListDiff:
    """What a refresh does; subentry ids name the subscription's channels."""

    add: list[Channel] = field(default_factory=list)
    update: list[tuple[str, Channel]] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    # Gone from the source, kept (the subscription keeps removed channels).
    kept: list[str] = field(default_factory=list)
    unchanged: int = 0
    # New or changed to an id another channel already plays: left as they were
    # (``held``: the subscription's channels among them).
    conflicts: list[Channel] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    # New, past the engine's room for channels: not added (see MAX_CHANNELS_PER_ENGINE).
    left_out: list[Channel] = field(default_factory=list)

    @property
    def touched(self) -> int:
        """How many channels the refresh adds, changes or removes."""
        return len(self.add) + len(self.update) + len(self.remove)

    def counts(self) -> dict[str, int]:
        """For the action's answer and the log."""
        return {
            "added": len(self.add),
            "updated": len(self.update),
            "removed": len(self.remove),
            "kept": len(self.kept),
            "unchanged": self.unchanged,
            "conflicts": len(self.conflicts),
            "left_out": len(self.left_out),
        }


def _match(
    old: list[tuple[str, Channel]],
    new: list[Channel],
    key: Callable[[Channel], Hashable | None],
    pairs: list[tuple[str, Channel, Channel]],
    source: Sequence[Channel],
) -> tuple[list[tuple[str, Channel]], list[Channel]]:
    """Pair channels with the same ``key``; return the unpaired ones of each side.

    A key the whole source repeats names no channel (a list with one tvg-id
    twice would pair them the other way round on every refresh): those
    channels are left to the next key.
    """
    repeated = {
        value
        for value, count in Counter(key(c) for c in source).items()
        if count > 1 and value is not None
    }
    waiting: dict[Hashable, list[tuple[str, Channel]]] = defaultdict(list)
    for item in old:
        if (value := key(item[1])) is not None and value not in repeated:
            waiting[value].append(item)
    paired: set[str] = set()
    rest_new: list[Channel] = []
    for channel in new:
        value = key(channel)
        candidates = waiting.get(value) if value is not None else None
        if candidates:
            subentry_id, current = candidates.pop(0)
            paired.add(subentry_id)
            pairs.append((subentry_id, current, channel))
        else:
            rest_new.append(channel)
    return [item for item in old if item[0] not in paired], rest_new


def _name(channel: Channel) -> str:
    return channel.name.casefold()


def diff_channels(
    current: Sequence[tuple[str, Channel]],
    source: Sequence[Channel],
    *,
    subscription: str,
    taken: Collection[ContentRef],
    keep_removed: bool,
    room: int,
) -> ListDiff:
    """The refresh of ``subscription`` from ``current`` (its channels, by
    subentry id) to ``source`` (the list as now published).

    ``taken``: what the channels outside the subscription play; ``room``: how
    many channels the engine entry takes beyond those it has.
    """
    pairs: list[tuple[str, Channel, Channel]] = []
    old = list(current)
    new = [replace(channel, subscription=subscription) for channel in source]
    old, new = _match(old, new, lambda c: c.tvg_id, pairs, source)
    old, new = _match(old, new, _name, pairs, source)
    old, new = _match(old, new, lambda c: c.ref, pairs, source)

    diff = ListDiff()
    if keep_removed:
        diff.kept = [subentry_id for subentry_id, _ in old]
    else:
        diff.remove = [subentry_id for subentry_id, _ in old]
    # What plays after the refresh whatever it changes: other channels, kept
    # ones, and those whose id stays.
    fixed = set(taken) | {c.ref for sid, c in old if sid in diff.kept}
    changing: list[tuple[str, Channel, Channel]] = []
    for subentry_id, channel, wanted in pairs:
        if channel == wanted:
            diff.unchanged += 1
        else:
            changing.append((subentry_id, channel, wanted))
        if channel.ref == wanted.ref:
            fixed.add(channel.ref)
    # A change to an id that stays taken is refused; that channel keeps its id,
    # which may in turn refuse another change: until none is refused.
    while blocked := [
        item for item in changing if item[2].ref != item[1].ref and item[2].ref in fixed
    ]:
        for item in blocked:
            diff.conflicts.append(item[2])
            diff.held.append(item[0])
            fixed.add(item[1].ref)
            changing.remove(item)
    diff.update = [(subentry_id, wanted) for subentry_id, _, wanted in changing]
    playing = fixed | {wanted.ref for _, wanted in diff.update}
    room += len(diff.remove)
    for channel in new:
        if channel.ref in playing:
            diff.conflicts.append(channel)
        elif len(diff.add) < room:
            diff.add.append(channel)
            playing.add(channel.ref)
        else:
            diff.left_out.append(channel)
    return diff
