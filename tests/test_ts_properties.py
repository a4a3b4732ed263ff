"""The TS parsers are total: random and mutated packets never raise (hypothesis)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from custom_components.acestream_proxy.stream.ts import (
    PACKET_SIZE,
    SYNC_BYTE,
    ProgramInfo,
    TsAligner,
    last_counters,
    mark_discontinuity,
    packet_pid,
    pat_offsets,
    random_access_offsets,
)

SAMPLE = (Path(__file__).parent / "fixtures" / "sample.ts").read_bytes()
HEAD = SAMPLE[: 400 * PACKET_SIZE]  # PAT, PMT and the first keyframes

# No example database in the work tree; CI machines are slow: no deadline.
PROPERTY = settings(
    deadline=None,
    database=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def mutated(draw: st.DrawFn, source: bytes = HEAD) -> bytes:
    """A slice of real TS with bytes flipped, cut short or spliced with garbage."""
    start = draw(st.integers(0, len(source) // PACKET_SIZE - 1)) * PACKET_SIZE
    size = draw(st.integers(1, 40)) * PACKET_SIZE
    data = bytearray(source[start : start + size])
    for _ in range(draw(st.integers(0, 12))):
        index = draw(st.integers(0, len(data) - 1))
        data[index] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=400))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut] if draw(st.booleans()) else data)


def _real_psi_packets() -> tuple[bytes, bytes]:
    """The fixture's PAT and PMT packets."""
    program = ProgramInfo()
    program.scan(HEAD)
    assert program.pat is not None
    assert program.pmt is not None
    return program.pat, program.pmt


PAT, PMT = _real_psi_packets()


@st.composite
def psi_packet(draw: st.DrawFn) -> bytes:
    """A PAT or PMT packet whose header, pointer, lengths or body are corrupt."""
    packet = bytearray(draw(st.sampled_from([PAT, PMT])))
    # The bytes every section parser trusts: AF control and length, pointer
    # field, table id, section length, program_info_length, ES info lengths.
    for index in draw(st.lists(st.integers(3, 40), max_size=6)):
        packet[index] = draw(st.integers(0, 255))
    for _ in range(draw(st.integers(0, 4))):
        packet[draw(st.integers(0, PACKET_SIZE - 1))] = draw(st.integers(0, 255))
    return bytes(packet[: draw(st.integers(0, PACKET_SIZE))])


@PROPERTY
@given(st.lists(st.binary(max_size=2000), max_size=8))
def test_aligner_is_total_on_random_bytes(reads: list[bytes]) -> None:
    """Any reads: only whole packets starting with 0x47 come out."""
    aligner = TsAligner()
    total_in = total_out = 0
    for data in reads:
        out = aligner.feed(data)
        total_in += len(data)
        total_out += len(out)
        assert len(out) % PACKET_SIZE == 0
        assert all(byte == SYNC_BYTE for byte in out[::PACKET_SIZE])
    assert total_out + aligner.discarded <= total_in


@PROPERTY
@given(mutated(), st.lists(st.integers(1, 3000), max_size=6))
def test_aligner_is_total_on_mutated_ts(data: bytes, splits: list[int]) -> None:
    """Damaged TS split at any points: whole packets out, nothing raises."""
    aligner = TsAligner()
    out = bytearray()
    pos = 0
    for size in [*splits, len(data)]:
        out += aligner.feed(data[pos : pos + size])
        pos += size
    assert len(out) % PACKET_SIZE == 0
    assert all(byte == SYNC_BYTE for byte in out[::PACKET_SIZE])


@PROPERTY
@given(st.integers(0, 40), st.lists(st.integers(1, 5000), min_size=1, max_size=10))
def test_aligner_passes_clean_ts_split_anywhere(start: int, splits: list[int]) -> None:
    """Clean TS cut into reads of any size comes out byte for byte."""
    data = HEAD[start * PACKET_SIZE :][: sum(splits)]
    aligner = TsAligner()
    out = bytearray()
    pos = 0
    for size in splits:
        out += aligner.feed(data[pos : pos + size])
        pos += size
    whole = len(data) // PACKET_SIZE * PACKET_SIZE
    # Up to two packets wait for the three-in-a-row check at the very start.
    assert data[: len(out)] == out
    assert len(out) >= whole - 2 * PACKET_SIZE
    assert aligner.resyncs == 0


@PROPERTY
@given(st.one_of(mutated(), st.binary(max_size=4000)))
def test_program_scan_and_rap_scan_are_total(data: bytes) -> None:
    """PAT/PMT parsing and the keyframe scans accept any bytes."""
    program = ProgramInfo()
    program.scan(data)
    if program.complete:
        assert len(program.header) == 2 * PACKET_SIZE
    # The joining viewer's header and a restart's lead-in, from any data.
    last_counters(data, program.counters)
    assert len(program.lead_in(True, data)) % PACKET_SIZE == 0
    assert len(program.header_before([data, data[:100]])) % PACKET_SIZE == 0
    for video_pid in (program.video_pid, None, 0x100):
        for offset in random_access_offsets(data, video_pid):
            assert offset % PACKET_SIZE == 0
            assert offset + PACKET_SIZE <= len(data)
    for offset in pat_offsets(data):
        assert offset % PACKET_SIZE == 0
        assert offset + PACKET_SIZE <= len(data)


@PROPERTY
@given(st.lists(psi_packet(), min_size=1, max_size=4))
def test_corrupt_pat_and_pmt_never_raise(packets: list[bytes]) -> None:
    """Corrupt section lengths, pointers and loops: parsed or ignored, never raised."""
    program = ProgramInfo()
    for packet in packets:
        program.scan(packet)
    program.scan(b"".join(packets))
    assert program.video_pid is None or 0 <= program.video_pid <= 0x1FFF


@PROPERTY
@given(st.binary(max_size=600), st.integers(-10, 700))
def test_mark_discontinuity_and_pid_are_total(data: bytes, offset: int) -> None:
    """Any offset into any bytes: same length back, a PID or -1."""
    marked = mark_discontinuity(data, offset)
    assert len(marked) == len(data)
    assert -1 <= packet_pid(data, offset) <= 0x1FFF


def test_malformed_pmt_does_not_crash() -> None:
    """Defect: a PMT whose section_length is too short for its header raised."""
    packet = bytearray(PMT)
    pos = 4 + (1 + packet[4] if packet[3] & 0x20 else 0)
    pos += 1 + packet[pos]  # pointer field
    packet[pos + 1] = packet[pos + 1] & 0xF0
    packet[pos + 2] = 5  # 5 bytes: no room for program_info_length
    program = ProgramInfo()
    program.scan(PAT + bytes(packet))
    assert program.pmt_pid is not None
    assert not program.complete
    # A later well-formed PMT is still taken.
    program.scan(PMT)
    assert program.complete


def test_discontinuity_needs_an_adaptation_field() -> None:
    """Without an adaptation field (or with an empty one) nothing is patched."""
    no_af = bytes([SYNC_BYTE, 0x01, 0x00, 0x10]) + bytes(184)
    assert mark_discontinuity(no_af, 0) == no_af
    empty_af = bytes([SYNC_BYTE, 0x01, 0x00, 0x30, 0x00]) + bytes(183)
    assert mark_discontinuity(empty_af, 0) == empty_af
    with_af = bytes([SYNC_BYTE, 0x01, 0x00, 0x30, 0x01, 0x40]) + bytes(182)
    assert mark_discontinuity(with_af, 0)[5] == 0xC0


def test_aligner_counts_lost_sync_once() -> None:
    """Garbage in the middle: one resync, the garbage counted as discarded."""
    aligner = TsAligner()
    out = aligner.feed(HEAD[: 10 * PACKET_SIZE])
    assert aligner.synced
    out += aligner.feed(b"\x00" * 5000)
    out += aligner.feed(b"\x01" * 5000)
    assert not aligner.synced
    out += aligner.feed(HEAD[10 * PACKET_SIZE : 30 * PACKET_SIZE])
    assert aligner.resyncs == 1
    assert aligner.discarded == 10_000
    assert out == HEAD[: 30 * PACKET_SIZE]


def test_aligner_ignores_non_ts() -> None:
    """A file that is not MPEG-TS (HTML, Matroska) yields no packets at all."""
    aligner = TsAligner()
    html = b"<html><body>" + b"G" * 3 + b"not a stream</body></html>" * 2000
    assert aligner.feed(html) == b""
    assert aligner.discarded == len(html) - 2 * PACKET_SIZE
