"""Timestamps and PES boundaries in MPEG-TS packets, for cutting segments."""

from __future__ import annotations

from typing import Final

from ..ts import PACKET_SIZE

PTS_HZ: Final = 90_000
PTS_WRAP: Final = 1 << 33
_PTS_HALF: Final = 1 << 32


def ticks(start: int, end: int) -> int:
    """``end - start`` in 90 kHz ticks across the 33-bit wrap (negative: earlier)."""
    return (end - start + _PTS_HALF) % PTS_WRAP - _PTS_HALF


def _timestamp(p: bytes | bytearray | memoryview, pos: int) -> int:
    return (
        ((p[pos] >> 1) & 0x07) << 30
        | p[pos + 1] << 22
        | (p[pos + 2] >> 1) << 15
        | p[pos + 3] << 7
        | p[pos + 4] >> 1
    )


def _write_timestamp(p: bytearray, pos: int, value: int) -> None:
    p[pos] = (p[pos] & 0xF0) | ((value >> 29) & 0x0E) | 0x01
    p[pos + 1] = (value >> 22) & 0xFF
    p[pos + 2] = ((value >> 14) & 0xFE) | 0x01
    p[pos + 3] = (value >> 7) & 0xFF
    p[pos + 4] = ((value << 1) & 0xFE) | 0x01


def _retime(packet: bytes, shift: int) -> bytes:
    """The packet with its PCR and PES timestamps moved by ``shift`` ticks."""
    p = bytearray(packet)
    if p[3] & 0x20 and p[4] >= 7 and p[5] & 0x10:
        base = p[6] << 25 | p[7] << 17 | p[8] << 9 | p[9] << 1 | p[10] >> 7
        base = (base + shift) % PTS_WRAP
        p[6:10] = (base >> 1).to_bytes(4, "big")
        p[10] = (base & 0x01) << 7 | (p[10] & 0x7F)
    if p[1] & 0x40:
        pos = _payload_start(p)
        if pos + 14 <= PACKET_SIZE and p[pos : pos + 3] == b"\x00\x00\x01":
            flags = p[pos + 7]
            if flags & 0x80:
                pts = _timestamp(p, pos + 9)
                _write_timestamp(p, pos + 9, (pts + shift) % PTS_WRAP)
                if flags & 0x40 and pos + 19 <= PACKET_SIZE:
                    dts = _timestamp(p, pos + 14)
                    _write_timestamp(p, pos + 14, (dts + shift) % PTS_WRAP)
    return bytes(p)


def _payload_start(packet: bytes | bytearray | memoryview) -> int:
    """Offset of the payload in a packet (PACKET_SIZE if it has none)."""
    if not packet[3] & 0x10:
        return PACKET_SIZE
    if packet[3] & 0x20:
        return min(PACKET_SIZE, 5 + packet[4])
    return 4


def pes_timestamps(packet: bytes | memoryview) -> tuple[int, int] | None:
    """(PTS, DTS) of the PES that starts in this packet (DTS = PTS if absent)."""
    if not packet[1] & 0x40:
        return None
    pos = _payload_start(packet)
    if pos + 14 > PACKET_SIZE or packet[pos : pos + 3] != b"\x00\x00\x01":
        return None
    flags = packet[pos + 7]
    if not flags & 0x80:
        return None
    pts = _timestamp(packet, pos + 9)
    if flags & 0x40 and pos + 19 <= PACKET_SIZE:
        return pts, _timestamp(packet, pos + 14)
    return pts, pts


def _pes_size(packet: bytes | memoryview) -> int:
    """Bytes of the PES that starts here: -1 unbounded, 0 not a PES (a section)."""
    pos = _payload_start(packet)
    if pos + 6 > PACKET_SIZE or packet[pos : pos + 3] != b"\x00\x00\x01":
        return 0
    length = (packet[pos + 4] << 8) | packet[pos + 5]
    return length + 6 if length else -1


def _flagged(packet: bytes | bytearray | memoryview) -> tuple[bool, bool]:
    """(random_access_indicator, discontinuity_indicator) of a packet."""
    if not packet[3] & 0x20 or not packet[4]:
        return False, False
    return bool(packet[5] & 0x40), bool(packet[5] & 0x80)
