"""MPEG-TS helpers and the ring, on the committed fixture's real packets."""

from __future__ import annotations

from pathlib import Path

import pytest

from custom_components.acestream_proxy.stream.ring import Cursor, Ring
from custom_components.acestream_proxy.stream.ts import (
    PACKET_SIZE,
    ProgramInfo,
    TsAligner,
    mark_discontinuity,
    null_packets,
    packet_pid,
    random_access_offsets,
)

FIXTURE = Path(__file__).parent / "fixtures" / "sample.ts"


@pytest.fixture(scope="module")
def sample() -> bytes:
    """The real H.264 + AAC fixture."""
    return FIXTURE.read_bytes()


def test_aligner_passes_aligned_data_through(sample: bytes) -> None:
    """Aligned input comes out unchanged, split reads are joined."""
    aligner = TsAligner()
    out = aligner.feed(sample[:1000]) + aligner.feed(sample[1000:5000])
    assert out == sample[: 5000 // PACKET_SIZE * PACKET_SIZE]
    assert aligner.resyncs == 0


def test_aligner_resyncs_on_garbage(sample: bytes) -> None:
    """Leading garbage and a corrupt packet in the middle are skipped."""
    aligner = TsAligner()
    out = aligner.feed(b"\x00\x47garbage" + sample[: PACKET_SIZE * 10])
    assert out == sample[: PACKET_SIZE * 10]
    broken = bytearray(sample[: PACKET_SIZE * 10])
    broken[PACKET_SIZE * 4] = 0x00  # sync byte of packet 4 lost
    aligner = TsAligner()
    out = aligner.feed(bytes(broken))
    assert out[: PACKET_SIZE * 4] == sample[: PACKET_SIZE * 4]
    assert (
        out[PACKET_SIZE * 4 :]
        == sample[PACKET_SIZE * 5 : PACKET_SIZE * 10][: len(out) - PACKET_SIZE * 4]
    )
    assert aligner.resyncs >= 1
    assert all(b == 0x47 for b in out[::PACKET_SIZE])


def test_aligner_waits_for_sync(sample: bytes) -> None:
    """No sync run yet: nothing out, the tail is kept for the next read."""
    aligner = TsAligner()
    assert aligner.feed(b"\x01" * 100) == b""
    assert aligner.feed(b"") == b""
    out = aligner.feed(sample[: PACKET_SIZE * 4])
    assert out == sample[: PACKET_SIZE * 4]
    aligner.feed(sample[:100])
    aligner.reset()
    assert aligner.feed(sample[: PACKET_SIZE * 3]) == sample[: PACKET_SIZE * 3]


def test_program_and_keyframes(sample: bytes) -> None:
    """PAT -> PMT -> the H.264 PID, and keyframes flagged on it once a second."""
    program = ProgramInfo()
    assert not program.complete
    assert program.header == b""
    program.scan(sample[: 200 * PACKET_SIZE])
    assert program.complete
    assert program.video_pid is not None
    assert packet_pid(program.header, 0) == 0
    assert packet_pid(program.header, PACKET_SIZE) == program.pmt_pid
    raps = random_access_offsets(sample, program.video_pid)
    assert len(raps) >= 6  # ~8 s with a keyframe each second
    for offset in raps:
        assert packet_pid(sample, offset) == program.video_pid
    assert len(random_access_offsets(sample, None)) >= len(raps)
    program.reset()
    assert not program.complete


def test_discontinuity_and_nulls(sample: bytes) -> None:
    """The flag lands in the adaptation field; null packets are PID 0x1FFF."""
    program = ProgramInfo()
    program.scan(sample)
    offset = random_access_offsets(sample, program.video_pid)[0]
    chunk = sample[offset : offset + PACKET_SIZE * 2]
    marked = mark_discontinuity(chunk, 0)
    assert marked[5] & 0x80
    assert marked[6:] == chunk[6:]
    nulls = null_packets(3)
    assert len(nulls) == 3 * PACKET_SIZE
    assert {packet_pid(nulls, i) for i in range(0, len(nulls), PACKET_SIZE)} == {0x1FFF}


def test_ring_window_and_cursors() -> None:
    """Bounded by bytes and seconds, RAPs follow the window, cursors detect lag."""
    ring = Ring(max_bytes=1000, max_seconds=10)
    ring.append(b"a" * 400, [0], now=0)
    ring.append(b"b" * 400, [], now=1)
    assert len(ring) == 2
    cursor = Cursor(0)
    assert [bytes(p) for p in ring.read(cursor, 10_000)] == [b"a" * 400, b"b" * 400]
    assert cursor.seq == 2
    ring.append(b"c" * 400, [100], now=2)  # 1200 bytes > 1000: "a" leaves
    assert ring.first_seq == 1
    assert ring.behind(Cursor(0))
    assert ring.newest_rap() == Cursor(2, 100)
    partial = Cursor(2, 100)
    assert [bytes(p) for p in ring.read(partial, 10)] == [b"c" * 300]
    ring.append(b"d" * 10, [], now=20)  # everything older than 10 s leaves
    assert ring.first_seq == 3
    assert ring.newest_rap() is None
    ring.clear()
    assert len(ring) == 0
    assert ring.size == 0
    ring.append(b"e", [], now=21)
    assert ring.first_seq == 4


def test_ring_history_starts_at_a_keyframe_old_enough() -> None:
    """rap_back: the newest keyframe at least that old, else the oldest held."""
    ring = Ring(max_bytes=10_000, max_seconds=10)
    assert ring.rap_back(5, now=0) is None
    ring.append(b"a" * 100, [0], now=0)
    ring.append(b"b" * 100, [50], now=2)
    ring.append(b"c" * 100, [], now=4)
    ring.append(b"d" * 100, [10], now=6)
    assert ring.rap_back(3, now=6) == Cursor(1, 50)  # arrived at 2: 4 s old
    assert ring.rap_back(5, now=6) == Cursor(0, 0)
    assert ring.rap_back(60, now=6) == Cursor(0, 0)  # as far back as it goes
    assert ring.rap_back(0, now=6) == Cursor(3, 10)
    assert ring.age(1, now=6) == 4
    assert ring.age(9, now=6) == 0  # not held
    assert ring.age(0, now=-1) == 0  # never negative
