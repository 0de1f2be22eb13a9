"""Errors a user can act on.

A `SecateurError` carries one line that says what went wrong and what to do; the CLI prints it
without a traceback and exits with `exit_code`. Anything else that escapes is a bug in secateur.
"""

from __future__ import annotations


class SecateurError(Exception):
    """Bad input or an unusable environment: one line, exit code 2."""

    exit_code = 2


class VerificationError(SecateurError):
    """The pruned model does not have the structure that was asked for: exit code 3."""

    exit_code = 3
