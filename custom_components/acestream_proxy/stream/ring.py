"""Shared ring of TS chunks with random-access points (no Home Assistant imports).

Chunks are appended once by the producer and shared by reference with every viewer:
nothing is copied per viewer. A viewer is a cursor (sequence number, offset) into
the ring. The ring is bounded in bytes and in seconds; random-access points (RAPs)
are indexed so a joining or lagging viewer can start where a decoder can.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class Cursor:
    """Where a viewer is: the next byte to send is chunk ``seq`` at ``offset``."""

    seq: int
    offset: int = 0


class Ring:
    """Bounded FIFO of TS chunks, addressed by a monotonic sequence number."""

    __slots__ = (
        "_chunks",
        "_raps",
        "_times",
        "first_seq",
        "max_bytes",
        "max_seconds",
        "next_seq",
        "size",
    )

    def __init__(self, max_bytes: int, max_seconds: float) -> None:
        """Keep at most ``max_bytes`` and ``max_seconds`` of data."""
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self._chunks: dict[int, bytes] = {}
        self._times: deque[float] = deque()
        self._raps: deque[tuple[int, int]] = deque()
        self.first_seq = 0
        self.next_seq = 0
        self.size = 0

    def __len__(self) -> int:
        """Number of chunks held."""
        return self.next_seq - self.first_seq

    def append(self, chunk: bytes, raps: list[int], now: float) -> None:
        """Add a chunk (O(1) amortised) and drop what falls out of the window."""
        seq = self.next_seq
        self._chunks[seq] = chunk
        self._times.append(now)
        self.next_seq = seq + 1
        self.size += len(chunk)
        for offset in raps:
            self._raps.append((seq, offset))
        horizon = now - self.max_seconds
        # Always keep the newest chunk, whatever its size.
        while self.first_seq < seq and (
            self.size > self.max_bytes or self._times[0] < horizon
        ):
            self.size -= len(self._chunks.pop(self.first_seq))
            self._times.popleft()
            self.first_seq += 1
        raps_ = self._raps
        while raps_ and raps_[0][0] < self.first_seq:
            raps_.popleft()

    def newest_rap(self) -> Cursor | None:
        """The newest random-access point still in the ring."""
        if not self._raps:
            return None
        seq, offset = self._raps[-1]
        return Cursor(seq, offset)

    def rap_back(self, seconds: float, now: float) -> Cursor | None:
        """The newest random-access point at least ``seconds`` old (by arrival),
        else the oldest one held: where a consumer that wants history starts."""
        if not self._raps:
            return None
        horizon = now - seconds
        times = self._times
        first = self.first_seq
        chosen = self._raps[0]
        for rap in reversed(self._raps):
            if times[rap[0] - first] <= horizon:
                chosen = rap
                break
        return Cursor(*chosen)

    def age(self, seq: int, now: float) -> float:
        """Seconds since chunk ``seq`` arrived (0 for one not or no longer held)."""
        if not self.first_seq <= seq < self.next_seq:
            return 0.0
        return max(0.0, now - self._times[seq - self.first_seq])

    def before(self, cursor: Cursor) -> list[bytes | memoryview]:
        """What the ring holds before ``cursor``, newest first (no copies)."""
        pieces: list[bytes | memoryview] = []
        if cursor.seq in self._chunks and cursor.offset:
            pieces.append(memoryview(self._chunks[cursor.seq])[: cursor.offset])
        pieces.extend(
            self._chunks[seq]
            for seq in range(min(cursor.seq, self.next_seq) - 1, self.first_seq - 1, -1)
        )
        return pieces

    def time_of(self, cursor: Cursor) -> float:
        """When the chunk at ``cursor`` was appended (time.monotonic())."""
        return self._times[cursor.seq - self.first_seq]

    def behind(self, cursor: Cursor) -> bool:
        """Whether the data at ``cursor`` has already left the ring."""
        return cursor.seq < self.first_seq

    def read(self, cursor: Cursor, limit: int) -> list[bytes | memoryview]:
        """Pieces from ``cursor`` up to about ``limit`` bytes; advances the cursor.

        Whole chunks are returned as the shared objects themselves; only a partial
        first chunk is a memoryview slice (still no copy).
        """
        pieces: list[bytes | memoryview] = []
        total = 0
        seq = cursor.seq
        offset = cursor.offset
        chunks = self._chunks
        while seq < self.next_seq and total < limit:
            chunk = chunks[seq]
            piece: bytes | memoryview = memoryview(chunk)[offset:] if offset else chunk
            pieces.append(piece)
            total += len(piece)
            seq += 1
            offset = 0
        cursor.seq = seq
        cursor.offset = offset
        return pieces

    def clear(self) -> None:
        """Drop everything (the sequence keeps counting)."""
        self._chunks.clear()
        self._times.clear()
        self._raps.clear()
        self.first_seq = self.next_seq
        self.size = 0
