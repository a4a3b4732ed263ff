"""MPEG-TS packet helpers for the broadcaster (no Home Assistant imports).

Every function here is total: whatever bytes the engine sends (truncated packets,
corrupt sections, a file that is not MPEG-TS at all), they return a result and never
raise, so a bad stream can fail a broadcast with a reason but never crash its
producer. Parsers only look at whole 188-byte packets and check every length they
read before indexing with it.

Only what the fan-out needs: keep the stream packet-aligned, find where a decoder can
start (a video packet with ``random_access_indicator``), remember the PAT and PMT that a
joining viewer must see first, and mark a discontinuity after an upstream restart.
Scanning uses strided slices of the chunk (done in C) so the per-chunk Python work is
proportional to the few packets that carry an adaptation field, not to the chunk size.
"""

from __future__ import annotations

from typing import Final

PACKET_SIZE: Final = 188
SYNC_BYTE: Final = 0x47
PAT_PID: Final = 0x0000
NULL_PID: Final = 0x1FFF

# PMT stream types that carry video: a keyframe on one of them is a join point.
VIDEO_STREAM_TYPES: Final = frozenset(
    {0x01, 0x02, 0x10, 0x1B, 0x20, 0x24, 0x27, 0x42, 0xD1, 0xEA}
)

# Byte 3 of a packet: adaptation_field_control bit 0x20 = adaptation field present.
_AF_PRESENT: Final = bytes(1 if b & 0x20 else 0 for b in range(256))


def null_packets(count: int) -> bytes:
    """Null packets (PID 0x1FFF): valid TS that players skip; keeps a socket alive."""
    packet = bytes([SYNC_BYTE, 0x1F, 0xFF, 0x10]) + b"\xff" * (PACKET_SIZE - 4)
    return packet * count


def packet_pid(data: bytes | bytearray | memoryview, offset: int) -> int:
    """PID of the packet at ``offset``; -1 when there is no packet header there."""
    if offset < 0 or offset + 3 > len(data):
        return -1
    return ((data[offset + 1] & 0x1F) << 8) | data[offset + 2]


def with_counter(packet: bytes, cc: int) -> bytes:
    """A copy of ``packet`` with continuity counter ``cc``."""
    return packet[:3] + bytes([(packet[3] & 0xF0) | (cc & 0x0F)]) + packet[4:]


def discontinuity_packet(pid: int, cc: int) -> bytes:
    """An adaptation-field-only packet on ``pid`` flagged discontinuity_indicator.

    It carries no payload, so its counter does not advance: the next packet of the
    PID that carries payload continues from ``cc``.
    """
    head = bytes([SYNC_BYTE, (pid >> 8) & 0x1F, pid & 0xFF, 0x20 | (cc & 0x0F)])
    return head + b"\xb7\x80" + b"\xff" * (PACKET_SIZE - 6)


def last_counters(data: bytes | memoryview, counters: dict[int, int]) -> None:
    """Record in ``counters`` the last continuity counter of each PID in ``data``."""
    for offset in range(0, len(data) - PACKET_SIZE + 1, PACKET_SIZE):
        if data[offset + 3] & 0x10:  # carries payload: its counter counts
            pid = ((data[offset + 1] & 0x1F) << 8) | data[offset + 2]
            if pid != NULL_PID:
                counters[pid] = data[offset + 3] & 0x0F


def _first_counters(data: bytes) -> dict[int, int]:
    """The continuity counter of the first payload packet of each PID in ``data``."""
    found: dict[int, int] = {}
    for offset in range(0, len(data) - PACKET_SIZE + 1, PACKET_SIZE):
        if data[offset + 3] & 0x10:
            pid = ((data[offset + 1] & 0x1F) << 8) | data[offset + 2]
            if pid != NULL_PID and pid not in found:
                found[pid] = data[offset + 3] & 0x0F
    return found


def discontinuity_lead(header: bytes | memoryview, after: bytes | memoryview) -> bytes:
    """Flag packets for a stream that resumes after a gap with ``header`` (PAT +
    PMT copies), then ``after``: each PID of both gets a discontinuity_indicator
    packet one step before its next counter, so a decoder resets instead of
    reporting loss."""
    counters = _first_counters(bytes(after))
    counters |= _first_counters(bytes(header))
    return b"".join(discontinuity_packet(pid, cc - 1) for pid, cc in counters.items())


def _last_counter(
    pieces: list[bytes | memoryview], pid: int, budget: int
) -> int | None:
    """Counter of the newest payload packet of ``pid`` in ``pieces`` (newest first)."""
    high, low = (pid >> 8) & 0x1F, pid & 0xFF
    for piece in pieces:
        if budget <= 0:
            return None
        budget -= len(piece)
        lows = bytes(piece[2::PACKET_SIZE])
        index = lows.rfind(low)
        while index >= 0:
            offset = index * PACKET_SIZE
            if piece[offset + 1] & 0x1F == high and piece[offset + 3] & 0x10:
                return piece[offset + 3] & 0x0F
            index = lows.rfind(low, 0, index)
    return None


class TsAligner:
    """Turns arbitrary reads into whole, sync-checked 188-byte packets.

    Total: any bytes in, aligned packets (possibly none) out, never an exception.
    Out of sync (at the start, after a reset, or after a packet without its sync
    byte) a position is trusted only when three packets in a row start with 0x47,
    so non-TS data (an MKV file, an HTML page) yields nothing and is counted in
    ``discarded``. ``resyncs`` counts how often sync was lost mid-stream.
    """

    __slots__ = ("_pending", "_synced", "discarded", "resyncs")

    def __init__(self) -> None:
        """Start with nothing pending and no sync."""
        self._pending = b""
        self._synced = False
        self.resyncs = 0
        self.discarded = 0

    @property
    def synced(self) -> bool:
        """Whether the last bytes seen were aligned packets."""
        return self._synced

    def reset(self) -> None:
        """Drop a partial packet (the upstream was reopened)."""
        self._pending = b""
        self._synced = False

    def feed(self, data: bytes) -> bytes:
        """Return the longest run of aligned packets available so far."""
        if self._pending:
            data = self._pending + data
            self._pending = b""
        size = len(data)
        pieces: list[bytes] = []
        pos = 0
        while pos < size:
            if not self._synced or data[pos] != SYNC_BYTE:
                if self._synced:
                    self.resyncs += 1
                    self._synced = False
                found = _find_sync(data, pos)
                if found < 0:
                    # Keep the tail a sync run could still start in.
                    keep = max(pos, size - 2 * PACKET_SIZE)
                    self.discarded += keep - pos
                    self._pending = data[keep:]
                    break
                self.discarded += found - pos
                pos = found
                self._synced = True
            end = pos + (size - pos) // PACKET_SIZE * PACKET_SIZE
            run = data[pos:end]
            bad = _first_bad_sync(run)
            if bad < 0:
                pieces.append(run)
                self._pending = data[end:]
                break
            pieces.append(run[:bad])
            pos += bad
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _find_sync(data: bytes, start: int) -> int:
    """First offset from ``start`` where three packets in a row start with 0x47."""
    pos = data.find(SYNC_BYTE, start)
    while pos >= 0 and pos + 2 * PACKET_SIZE < len(data):
        if (
            data[pos + PACKET_SIZE] == SYNC_BYTE
            and data[pos + 2 * PACKET_SIZE] == SYNC_BYTE
        ):
            return pos
        pos = data.find(SYNC_BYTE, pos + 1)
    return -1


def _first_bad_sync(chunk: bytes) -> int:
    """Offset of the first packet not starting with 0x47, or -1."""
    syncs = chunk[::PACKET_SIZE]
    if syncs.count(SYNC_BYTE) == len(syncs):
        return -1
    for index, byte in enumerate(syncs):
        if byte != SYNC_BYTE:
            return index * PACKET_SIZE
    return -1  # pragma: no cover - count said otherwise


class ProgramInfo:
    """Tracks PAT/PMT to know the video PID and keep copies for joining viewers."""

    __slots__ = ("counters", "pat", "pmt", "pmt_pid", "video_pid")

    # How far back a joining viewer's header looks for the stream's own PAT/PMT.
    LOOKBACK_BYTES = 8 * 1024 * 1024

    def __init__(self) -> None:
        """Nothing known yet."""
        self.pat: bytes | None = None
        self.pmt: bytes | None = None
        self.pmt_pid: int | None = None
        self.video_pid: int | None = None
        # Last continuity counter per PID of what came before the first join
        # point of the session (the data that was not kept).
        self.counters: dict[int, int] = {}

    def reset(self) -> None:
        """Forget the program (new upstream session)."""
        self.pat = self.pmt = None
        self.pmt_pid = self.video_pid = None
        self.counters = {}

    @property
    def complete(self) -> bool:
        """Whether PAT and PMT are both known."""
        return self.pmt is not None

    @property
    def header(self) -> bytes:
        """PAT + PMT packets to send a viewer before its first keyframe."""
        return (self.pat or b"") + (self.pmt or b"")

    def header_before(self, pieces: list[bytes | memoryview]) -> bytes:
        """PAT + PMT for a viewer that starts where ``pieces`` end (newest first).

        The copies take the counters of the stream's last PAT and PMT before that
        point, so the stream's next ones follow them without a jump.
        """
        if self.pat is None or self.pmt is None or self.pmt_pid is None:
            return self.header
        pat_cc = _last_counter(pieces, PAT_PID, self.LOOKBACK_BYTES)
        pmt_cc = _last_counter(pieces, self.pmt_pid, self.LOOKBACK_BYTES)
        pat = self.pat if pat_cc is None else with_counter(self.pat, pat_cc)
        pmt = self.pmt if pmt_cc is None else with_counter(self.pmt, pmt_cc)
        return pat + pmt

    def lead_in(self, discontinuity: bool, after: bytes = b"") -> bytes:
        """What goes before a session's first join point: PAT + PMT.

        Their counters continue the data dropped before that point (see
        ``counters``). After an upstream restart every known PID first gets a
        packet flagged discontinuity_indicator: viewers already playing see the
        new counters as a real discontinuity, not as loss.
        """
        if self.pat is None or self.pmt is None or self.pmt_pid is None:
            return b""
        # PIDs not seen before the join point: one step before their first
        # packet in ``after`` (the data that follows).
        counters = {pid: cc - 1 for pid, cc in _first_counters(after).items()}
        counters |= self.counters
        tables = {
            pid: with_counter(packet, counters.get(pid, packet[3]))
            for pid, packet in ((PAT_PID, self.pat), (self.pmt_pid, self.pmt))
        }
        pieces: list[bytes] = []
        if discontinuity:
            counters |= {pid: packet[3] for pid, packet in tables.items()}
            for pid, cc in counters.items():
                # A table copy follows: its flag packet stands one step before it.
                pieces.append(discontinuity_packet(pid, cc - (pid in tables)))
        pieces.extend(tables.values())
        return b"".join(pieces)

    def scan(self, chunk: bytes) -> None:
        """Look for PAT, then PMT, until both are known."""
        for offset in range(0, len(chunk) - PACKET_SIZE + 1, PACKET_SIZE):
            pid = packet_pid(chunk, offset)
            if pid == PAT_PID and self.pat is None:
                self._read_pat(chunk, offset)
            elif self.pmt_pid is not None and pid == self.pmt_pid:
                self._read_pmt(chunk, offset)
                if self.pmt is not None:
                    return

    @staticmethod
    def _section(chunk: bytes, offset: int) -> bytes | None:
        packet = chunk[offset : offset + PACKET_SIZE]
        # payload_unit_start: a section starts in this packet.
        if len(packet) < PACKET_SIZE or not packet[1] & 0x40:
            return None
        pos = 4
        if packet[3] & 0x20:
            pos += 1 + packet[4]
        if pos >= PACKET_SIZE:
            return None
        pos += 1 + packet[pos]  # pointer_field
        if pos + 3 > PACKET_SIZE:
            return None
        length = ((packet[pos + 1] & 0x0F) << 8) | packet[pos + 2]
        section = packet[pos : pos + 3 + length]
        if len(section) < 3 + length:  # spans packets: rare for PAT/PMT, skip
            return None
        return section

    def _read_pat(self, chunk: bytes, offset: int) -> None:
        section = self._section(chunk, offset)
        if section is None or section[0] != 0x00:
            return
        # Program loop between the 8-byte header and the 4-byte CRC.
        for pos in range(8, len(section) - 4, 4):
            program = (section[pos] << 8) | section[pos + 1]
            if program != 0:
                self.pmt_pid = ((section[pos + 2] & 0x1F) << 8) | section[pos + 3]
                self.pat = chunk[offset : offset + PACKET_SIZE]
                return

    def _read_pmt(self, chunk: bytes, offset: int) -> None:
        section = self._section(chunk, offset)
        # table_id, lengths, program number, version, section numbers, PCR PID,
        # program_info_length (12 bytes), then the CRC: shorter is malformed.
        if section is None or section[0] != 0x02 or len(section) < 16:
            return
        info_length = ((section[10] & 0x0F) << 8) | section[11]
        pos = 12 + info_length
        end = len(section) - 4
        video: int | None = None
        while pos + 5 <= end:
            stream_type = section[pos]
            pid = ((section[pos + 1] & 0x1F) << 8) | section[pos + 2]
            if video is None and stream_type in VIDEO_STREAM_TYPES:
                video = pid
            pos += 5 + (((section[pos + 3] & 0x0F) << 8) | section[pos + 4])
        self.video_pid = video
        self.pmt = chunk[offset : offset + PACKET_SIZE]


def random_access_offsets(chunk: bytes, video_pid: int | None) -> list[int]:
    """Offsets of packets flagged random_access_indicator (on the video PID if known)."""
    whole = len(chunk) // PACKET_SIZE * PACKET_SIZE  # a partial packet is no join point
    flags = chunk[3:whole:PACKET_SIZE].translate(_AF_PRESENT)
    found: list[int] = []
    index = flags.find(1)
    while index >= 0:
        offset = index * PACKET_SIZE
        if (
            chunk[offset + 4] > 0
            and chunk[offset + 5] & 0x40
            and (video_pid is None or packet_pid(chunk, offset) == video_pid)
        ):
            found.append(offset)
        index = flags.find(1, index + 1)
    return found


def pat_offsets(chunk: bytes) -> list[int]:
    """Offsets of packets starting a PAT: join points of a stream without RAI flags."""
    whole = len(chunk) // PACKET_SIZE * PACKET_SIZE
    low = chunk[2:whole:PACKET_SIZE]  # low byte of the PID: 0 for the PAT
    found: list[int] = []
    index = low.find(0)
    while index >= 0:
        offset = index * PACKET_SIZE
        if chunk[offset + 1] & 0x5F == 0x40:  # PUSI set, PID high bits 0
            found.append(offset)
        index = low.find(0, index + 1)
    return found


def mark_discontinuity(chunk: bytes, offset: int) -> bytes:
    """Set discontinuity_indicator on the packet at ``offset``.

    Only a packet with a non-empty adaptation field has the flag; any other input
    comes back unchanged.
    """
    if (
        offset < 0
        or offset + 6 > len(chunk)
        or not chunk[offset + 3] & 0x20
        or chunk[offset + 4] == 0
    ):
        return chunk
    patched = bytearray(chunk)
    patched[offset + 5] |= 0x80
    return bytes(patched)
