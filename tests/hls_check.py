"""Checks that strict players make: continuity counters, RFC 8216 playlists (and
the parts of RFC 8216bis low-latency ones), PTS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
import itertools
import re

from custom_components.acestream_proxy.stream.hls import pes_timestamps, ticks
from custom_components.acestream_proxy.stream.ts import ProgramInfo

PACKET = 188
NULL_PID = 0x1FFF


def cc_errors(
    data: bytes, counters: dict[int, tuple[int, bytes]] | None = None
) -> list[str]:
    """Continuity-counter jumps not excused by a discontinuity_indicator.

    A payload packet must carry the previous counter of its PID plus one; a packet
    without payload repeats it; one duplicate of a packet (same counter, same bytes)
    is allowed (ISO 13818-1 2.4.3.3). ``counters`` carries state across calls.
    """
    last = {} if counters is None else counters
    errors: list[str] = []
    for pos in range(0, len(data) - PACKET + 1, PACKET):
        packet = data[pos : pos + PACKET]
        pid = ((packet[1] & 0x1F) << 8) | packet[2]
        if pid == NULL_PID:
            continue
        cc = packet[3] & 0x0F
        payload = bool(packet[3] & 0x10)
        flagged = bool(packet[3] & 0x20 and packet[4] and packet[5] & 0x80)
        previous = last.get(pid)
        if previous is not None and not flagged:
            prev_cc, prev_packet = previous
            expected = (prev_cc + 1) % 16 if payload else prev_cc
            duplicate = payload and cc == prev_cc and packet == prev_packet
            if cc != expected and not duplicate:
                errors.append(f"PID {pid:#x} at byte {pos}: {prev_cc} then {cc}")
        last[pid] = (cc, packet)
    return errors


def video_pts(data: bytes) -> list[int]:
    """PTS of every video PES that starts in ``data``, in stream order."""
    program = ProgramInfo()
    program.scan(data)
    found = []
    for pos in range(0, len(data) - PACKET + 1, PACKET):
        if (
            data[pos + 1] & 0x40
            and (((data[pos + 1] & 0x1F) << 8) | data[pos + 2]) == program.video_pid
        ):
            stamps = pes_timestamps(data[pos : pos + PACKET])
            if stamps is not None:
                found.append(stamps[0])
    return found


def round_half_up(value: float) -> int:
    """What RFC 8216 4.3.3.1 means by "rounded to the nearest integer"."""
    return int(Decimal(repr(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class PlaylistPart:
    """One partial segment as a playlist lists it."""

    duration: float
    uri: str
    independent: bool


@dataclass(slots=True)
class PlaylistSegment:
    """One media segment as a playlist lists it."""

    seq: int
    duration: float
    discontinuity: bool
    date: datetime | None
    uri: str
    discontinuity_seq: int
    parts: list[PlaylistPart] = field(default_factory=list)


def _attributes(line: str) -> dict[str, str]:
    """A tag's attribute list (quoted strings unquoted)."""
    found: dict[str, str] = {}
    for match in re.finditer(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]):
        found[match.group(1)] = match.group(2).strip('"')
    return found


@dataclass
class PlaylistChecker:
    """Follows the reloads of one live playlist and enforces RFC 8216 on them."""

    target: int | None = None
    segments: dict[int, PlaylistSegment] = field(default_factory=dict)
    reloads: int = 0
    _media_seq: int = -1
    _first_seq: int = -1
    discontinuity_seq: int = 0
    # Parts (RFC 8216bis): every part seen, by (seq, index); the open segment's.
    parts: dict[tuple[int, int], PlaylistPart] = field(default_factory=dict)
    open_parts: list[PlaylistPart] = field(default_factory=list)
    hint: str | None = None
    # What hls.js (1.6) holds on to between reloads: by sequence number, each
    # segment's URI and discontinuity count, the open one included (see _slots).
    slots: dict[int, tuple[str | None, int]] = field(default_factory=dict)
    _last_complete: int = -1
    # What each URI served (the ``fetch`` of check).
    contents: dict[str, bytes] = field(default_factory=dict)

    def check(
        self, text: str, fetch: Callable[[str], bytes | None] | None = None
    ) -> list[PlaylistSegment]:
        """Check one reload against the rules and the previous reloads; with
        ``fetch`` (a URI's bytes), also that a listed part or segment keeps its
        bytes from reload to reload."""
        lines = text.splitlines()
        assert lines[0] == "#EXTM3U", text
        tags = {
            line.split(":", 1)[0]: line.split(":", 1)[1]
            for line in lines
            if line.startswith("#EXT-X-") and ":" in line
        }
        target = int(tags["#EXT-X-TARGETDURATION"])
        # 4.3.3.1: the target duration MUST NOT change.
        assert self.target in (None, target), (self.target, target)
        self.target = target
        media_seq = int(tags.get("#EXT-X-MEDIA-SEQUENCE", "0"))
        disc_seq = int(tags.get("#EXT-X-DISCONTINUITY-SEQUENCE", "0"))
        # 6.2.1: the media sequence never decreases.
        assert media_seq >= self._media_seq, (self._media_seq, media_seq)
        listed: list[PlaylistSegment] = []
        seq = media_seq
        current_disc = disc_seq
        discontinuity = False
        date: datetime | None = None
        duration: float | None = None
        part_target = self._part_rules(tags)
        parts: list[PlaylistPart] = []
        hints: list[dict[str, str]] = []
        for line in lines[1:]:
            if self._part_or_hint(line, seq, parts, hints, part_target):
                continue
            if line == "#EXT-X-DISCONTINUITY":
                discontinuity = True
                current_disc += 1
            elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
                date = datetime.fromisoformat(line.split(":", 1)[1])
            elif line.startswith("#EXTINF:"):
                duration = float(line.split(":", 1)[1].split(",", 1)[0])
            elif line and not line.startswith("#"):
                assert duration is not None, text
                # 4.3.3.1: each EXTINF rounded is at most the target duration.
                assert round_half_up(duration) <= target, (duration, target)
                assert not hints, text  # no segment after the hint
                # 4.4.4.9: a segment's parts make the whole segment.
                total = sum(part.duration for part in parts)
                assert not parts or abs(total - duration) <= 0.001 * len(parts), (
                    parts,
                    duration,
                )
                segment = PlaylistSegment(
                    seq, duration, discontinuity, date, line, current_disc, parts
                )
                known = self.segments.get(seq)
                if known is not None:
                    # 6.2.1/6.2.2: a segment keeps its duration, tags and number.
                    assert known.duration == duration, (known, segment)
                    assert known.discontinuity == discontinuity, (known, segment)
                    assert known.discontinuity_seq == current_disc, (known, segment)
                    assert known.date == date, (known, segment)
                self.segments[seq] = segment
                listed.append(segment)
                seq += 1
                discontinuity = False
                date = None
                duration = None
                parts = []
        if self._media_seq >= 0:
            # 6.2.2: the discontinuity sequence counts the discontinuities of the
            # segments that left the window.
            gone = range(self._media_seq, media_seq)
            left = sum(
                1
                for seq in gone
                if seq in self.segments and self.segments[seq].discontinuity
            )
            if all(seq in self.segments for seq in gone):
                assert disc_seq == self.discontinuity_seq + left, (
                    self.discontinuity_seq,
                    left,
                )
            else:  # reloaded too late to have seen every segment
                assert disc_seq >= self.discontinuity_seq + left, (
                    self.discontinuity_seq,
                    left,
                )
        if self._first_seq < 0:
            self._first_seq = media_seq
        if media_seq > self._first_seq:
            # 6.2.2: segments leave only while three target durations stay listed.
            assert sum(s.duration for s in listed) >= 3 * target, text
        # 4.4.5.3: at most one hint of each type.
        assert len({hint["TYPE"] for hint in hints}) == len(hints), hints
        self.open_parts = parts
        self.hint = next((h["URI"] for h in hints if h["TYPE"] == "PART"), None)
        self._same_slots(
            self._slots(listed, seq, current_disc, part_target, bool(parts or hints)),
            seq - 1,
        )
        self._same_bytes(listed, parts, fetch)
        self._media_seq = media_seq
        self.discontinuity_seq = disc_seq
        self.reloads += 1
        return listed

    def _part_or_hint(
        self,
        line: str,
        seq: int,
        parts: list[PlaylistPart],
        hints: list[dict[str, str]],
        part_target: float | None,
    ) -> bool:
        """An EXT-X-PART (of segment ``seq``) or EXT-X-PRELOAD-HINT line, checked."""
        if line.startswith("#EXT-X-PART:"):
            attributes = _attributes(line)
            part = PlaylistPart(
                float(attributes["DURATION"]),
                attributes["URI"],
                attributes.get("INDEPENDENT") == "YES",
            )
            # 4.4.4.9: a part lasts at most the part target duration.
            assert part_target is not None, line
            assert part.duration <= part_target, (part, part_target)
            assert not hints, line  # the hint comes after every part
            self._same_part(seq, len(parts), part)
            parts.append(part)
            return True
        if line.startswith("#EXT-X-PRELOAD-HINT:"):
            attributes = _attributes(line)
            assert attributes["TYPE"] in ("PART", "MAP"), line
            assert attributes.get("URI"), line
            hints.append(attributes)
            return True
        return False

    @staticmethod
    def _slots(
        listed: list[PlaylistSegment],
        following: int,
        discontinuity_seq: int,
        part_target: float | None,
        open_listed: bool,
    ) -> dict[int, tuple[str | None, int]]:
        """A reload as hls.js (1.6) reads it: its segments, and the open one after
        them (not yet a URI) if it lists parts of it or a hint. A low-latency
        playlist that ends with a whole segment instead is read as if that
        segment were also the open one, one number on (m3u8-parser's
        fragmentHint is the last fragment object)."""
        slots: dict[int, tuple[str | None, int]] = {
            s.seq: (_without_query(s.uri), s.discontinuity_seq) for s in listed
        }
        if part_target is None:
            return slots
        if open_listed:
            slots[following] = (None, discontinuity_seq)
        elif listed:
            slots[following] = slots[listed[-1].seq]
        return slots

    def _same_slots(
        self, slots: dict[int, tuple[str | None, int]], complete: int
    ) -> None:
        """6.2.1/6.2.2 as hls.js (1.6) enforces them from one reload to the next
        (level-helper's mapFragmentIntersection): each sequence number both
        reloads list, up to the older one's open segment, keeps its URI (if
        both have one) and its discontinuity count; else hls.js stops with
        "media sequence mismatch" or "discontinuity sequence mismatch"."""
        old = self.slots
        if old and slots:
            old_open = max(old) > self._last_complete
            last = min(self._last_complete, complete) + old_open
            for seq in range(max(min(old), min(slots)), last + 1):
                if seq not in old or seq not in slots:
                    continue
                (old_uri, old_disc), (uri, disc) = old[seq], slots[seq]
                assert not (old_uri and uri and old_uri != uri), (
                    f"media sequence mismatch {seq}",
                    old_uri,
                    uri,
                )
                assert old_disc == disc, (
                    f"discontinuity sequence mismatch {seq}",
                    old_disc,
                    disc,
                )
        self.slots = slots
        self._last_complete = complete

    def _same_bytes(
        self,
        listed: list[PlaylistSegment],
        open_parts: list[PlaylistPart],
        fetch: Callable[[str], bytes | None] | None,
    ) -> None:
        """A part or segment, once listed, serves the same bytes ever after."""
        if fetch is None:
            return
        uris = [s.uri for s in listed] + [
            p.uri for p in [*(p for s in listed for p in s.parts), *open_parts]
        ]
        for uri in uris:
            data = fetch(uri)
            if data is None:
                continue  # left the window
            key = _without_query(uri)
            assert self.contents.setdefault(key, data) == data, (
                f"{key} changed from one reload to the next"
            )

    def _part_rules(self, tags: dict[str, str]) -> float | None:
        """The part target of a low-latency playlist, its server control checked."""
        if "#EXT-X-PART-INF" not in tags:
            return None
        target = float(
            _attributes("#EXT-X-PART-INF:" + tags["#EXT-X-PART-INF"])["PART-TARGET"]
        )
        control = _attributes(
            "#EXT-X-SERVER-CONTROL:" + tags.get("#EXT-X-SERVER-CONTROL", "")
        )
        # 4.4.3.8: PART-HOLD-BACK is at least twice the part target duration.
        assert float(control["PART-HOLD-BACK"]) >= 2 * target, control
        assert control.get("CAN-BLOCK-RELOAD") == "YES", control
        return target

    def _same_part(self, seq: int, index: int, part: PlaylistPart) -> None:
        """6.2.2: a part keeps its duration and flags from reload to reload."""
        known = self.parts.get((seq, index))
        if known is not None:
            assert (known.duration, known.independent) == (
                part.duration,
                part.independent,
            ), (seq, index, known, part)
        self.parts[(seq, index)] = part

    def check_dates(self) -> None:
        """PROGRAM-DATE-TIME follows the durations within a continuous run."""
        ordered = [self.segments[seq] for seq in sorted(self.segments)]
        for before, after in itertools.pairwise(ordered):
            assert before.date is not None
            assert after.date is not None
            if after.discontinuity:
                assert after.date >= before.date + timedelta(seconds=before.duration)
                continue
            gap = after.date - before.date - timedelta(seconds=before.duration)
            assert abs(gap.total_seconds()) <= 0.002, (before, after)


def _without_query(uri: str) -> str:
    """A URI as hls.js compares it across reloads (signatures differ)."""
    return uri.split("?", 1)[0]


def pts_durations(segments: list[bytes]) -> list[float]:
    """Media time from each segment's first video PTS to the next one's."""
    firsts = [video_pts(data)[0] for data in segments]
    return [ticks(a, b) / 90_000 for a, b in itertools.pairwise(firsts)]
