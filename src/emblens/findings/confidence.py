"""How a finding's confidence is made up, in one place. It starts from the rule's `confidence`
(0.8 unless the rule says; a cause file may give its own), and rises by `STEP` for each of:

- the matched events come from more than one source (a server log and a client traceback);
- the rule's `supporting` events were quoted from a source the match did not cover (the server's
  `--api-key` line beside a client's 401);
- it explains other findings (it is a root cause, `rank`).

It falls by `WORDS_ONLY` when the words alone fired it: every matched event is prose or an
unlabelled line (no status, no exception, no level, no format that parsed it), as a paste's
sentence is. The words still name the cause; the structure that would confirm it is missing.

It never passes `CAP`: emblens reads evidence, it is never certain. Values are rounded to hundredths.

>>> initial(0.9, sources=2), raised(0.9), raised(0.97)
(0.95, 0.95, 0.99)
"""

from __future__ import annotations

STEP = 0.05
CAP = 0.99
WORDS_ONLY = 0.1
FLOOR = 0.3


def initial(confidence: float, *, sources: int, words_only: bool = False) -> float:
    """A finding's confidence from its rule (or cause), the number of sources it matched in, and
    whether only words (no structure) matched."""
    value = confidence + (STEP if sources > 1 else 0.0) - (WORDS_ONLY if words_only else 0.0)
    return round(max(min(FLOOR, confidence), min(CAP, value)), 2)


def raised(confidence: float) -> float:
    """One step more: supporting evidence from another source, or findings it explains."""
    return round(min(CAP, confidence + STEP), 2)
