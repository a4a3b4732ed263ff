"""How a broadcast is named: a content id or an infohash (40 hex characters).

The engine client re-exports these names, where the glue imports them from.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
import re
from typing import Final

HEX40: Final = re.compile(r"^[0-9a-fA-F]{40}$")


class ContentKind(StrEnum):
    """How a broadcast is named to the engine."""

    CONTENT_ID = "content_id"
    INFOHASH = "infohash"


@dataclass(frozen=True, slots=True)
class ContentRef:
    """A broadcast as a viewer names it: a content id or an infohash."""

    kind: ContentKind
    value: str

    @classmethod
    def parse(cls, kind: ContentKind, value: str) -> ContentRef:
        """Validate and normalise (40 hex characters, any case)."""
        if not HEX40.match(value):
            msg = f"{kind.value} must be 40 hexadecimal characters"
            raise ValueError(msg)
        return cls(kind, value.lower())
