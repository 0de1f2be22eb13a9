"""Structured pruning settings live with the other recipes in `secateur.config`; re-exported here."""

from secateur.config import STRUCTURED_IMPORTANCES, StructuredConfig

__all__ = ["STRUCTURED_IMPORTANCES", "StructuredConfig"]
