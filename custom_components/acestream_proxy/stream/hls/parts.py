"""Parts (LL-HLS): a segment published piece by piece while it is cut.

A part ends before a video frame once two more frames would take it past the part
target (one frame of room for a PES that is still open there), so it holds whole
frames and stays within the target. It only ends where no PES of another stream is
open (an audio PES whose tail would fall in the next part): players demux each
part on its own and drop what is cut off. The segment's header tables keep the
counters they have when its first part is cut (copies of the stream's latest,
which its next tables follow on), so that part stays as it was published. The last part
of a segment is what is left when the segment is finished, PES tails included, so
a segment's parts put together are the segment itself.

"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from .pes import PTS_HZ, ticks
from .window import PART_TARGET, Part, Partial, SegmentWindow


@dataclass(slots=True)
class _Building:
    """A segment being filled."""

    data: bytearray
    discontinuity: bool
    started: datetime
    start: int | None = None  # clock (DTS) of its first video PES
    clock: int | None = None  # newest video DTS
    frame: int = 0  # ticks between the last two video PES
    # PIDs whose PES started in this segment: (offset of that start, PES size).
    pes: dict[int, tuple[int, int]] = field(default_factory=dict)
    duration: float | None = None
    # Header tables whose counter waits for the stream's next table: PID -> offset.
    tables: dict[int, int] = field(default_factory=dict)
    # PES still missing their tails: PID -> bytes to come (-1: until the next start).
    open: dict[int, int] = field(default_factory=dict)
    # Its parts so far; where the part being filled starts (offset, clock), and
    # whether that part starts with a keyframe.
    partial: Partial = field(init=False)
    part_at: int = 0
    part_start: int | None = None
    part_key: bool = False

    def __post_init__(self) -> None:
        """Its parts start empty, dated like the segment."""
        self.partial = Partial(self.discontinuity, self.started)


class PartCutter(SegmentWindow):
    """Cuts the parts of the segment being filled."""

    if TYPE_CHECKING:
        _frame: int
        _closing: _Building | None

        def _open_pes(
            self, building: _Building, clock: int | None
        ) -> dict[int, int]: ...

    _part_ticks = int(PART_TARGET * PTS_HZ)

    def _part(self, building: _Building, clock: int, keyframe: bool) -> None:
        """A video frame starts in ``building``: end its part before it if due."""
        start = building.part_start
        if start is None:
            building.part_start = clock
            building.part_key = keyframe and building.part_at == 0
            return
        elapsed = ticks(start, clock)
        if elapsed + 2 * max(self._frame, 1) <= self._part_ticks or self._open_pes(
            building, clock
        ):
            return
        building.tables.clear()
        partial = building.partial
        end = len(building.data)
        partial.parts.append(
            Part(
                bytes(building.data[building.part_at : end]),
                elapsed / PTS_HZ,
                building.part_key,
            )
        )
        building.part_at = end
        building.part_start = clock
        building.part_key = False
        if self._closing is None:
            self._publish_partial(partial)

    def _last_part(self, building: _Building, duration: float) -> tuple[Part, ...]:
        """All parts of a finished segment: what is left is its last."""
        parts = building.partial.parts
        if len(building.data) > building.part_at:
            done = sum(part.duration for part in parts)
            parts.append(
                Part(
                    bytes(building.data[building.part_at :]),
                    max(duration - done, 0.001),
                    building.part_key,
                )
            )
        return tuple(parts)
