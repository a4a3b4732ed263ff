"""Config flow: one entry per AceStream engine.

Home Assistant loads this module; the flows themselves live in ``flows/``, one
module per flow. Importing the config flow registers it for the domain.
"""

from __future__ import annotations

from .flows.engine import AceStreamConfigFlow

__all__ = ["AceStreamConfigFlow"]
