"""The exceptions emblens raises.

    EmblensError          base: the CLI turns any of these into one line and exit status 2
    ├── InputError        a path, archive or member that cannot be used at all
    └── RuleError         a rule file that cannot be loaded; carries file and line
"""

from __future__ import annotations


class EmblensError(Exception):
    """Base of every error emblens reports to a user."""


class InputError(EmblensError):
    """An input that cannot be used (missing path, unreadable archive, bad argument)."""


class RuleError(EmblensError):
    """A rule that cannot be loaded or compiled; the message starts with `file:line:`."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(f"{where}{message}")
