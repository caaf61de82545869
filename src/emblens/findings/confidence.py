"""How a finding's confidence is made up, in one place. It starts from the rule's `confidence`
(0.8 unless the rule says; a cause file may give its own), and rises by `STEP` for each of:

- the matched events come from more than one source (a server log and a client traceback);
- the rule's `supporting` events were quoted from a source the match did not cover (the server's
  `--api-key` line beside a client's 401);
- it explains other findings (it is a root cause, `rank`).

It never passes `CAP`: emblens reads evidence, it is never certain. Values are rounded to hundredths.

>>> initial(0.9, sources=2), raised(0.9), raised(0.97)
(0.95, 0.95, 0.99)
"""

from __future__ import annotations

STEP = 0.05
CAP = 0.99


def initial(confidence: float, *, sources: int) -> float:
    """A finding's confidence from its rule (or cause) and the number of sources it matched in."""
    return round(min(CAP, confidence + (STEP if sources > 1 else 0.0)), 2)


def raised(confidence: float) -> float:
    """One step more: supporting evidence from another source, or findings it explains."""
    return round(min(CAP, confidence + STEP), 2)
