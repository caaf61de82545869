"""Answers worth keeping between runs: a bounded memo of a pure function of a pattern or a
template, whose answers the rule cache stores with the rules (`known`) and hands to the next
process (`learn`), so that a run with cached rules computes none of them again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_KNOWN = 4096


class Memo:
    """`compute` remembered for up to `limit` keys; `valid` checks an answer taken from the cache."""

    def __init__(self, compute: Callable[[str], Any], valid: Callable[[Any], bool], limit: int = MAX_KNOWN) -> None:
        self.compute, self.valid, self.limit = compute, valid, limit
        self.answers: dict[str, Any] = {}

    def __call__(self, key: str) -> Any:
        try:
            return self.answers[key]
        except KeyError:
            value = self.compute(key)
            if len(self.answers) < self.limit:
                self.answers[key] = value
            return value

    def known(self) -> dict[str, Any]:
        """The answers so far."""
        return dict(self.answers)

    def learn(self, answers: dict[str, Any]) -> None:
        """Take answers given before (by the same code: the rule cache's key holds its source)."""
        for key, value in answers.items():
            if len(self.answers) >= self.limit:
                break
            if isinstance(key, str) and self.valid(value):
                self.answers.setdefault(key, value)
