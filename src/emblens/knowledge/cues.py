"""How people in the field name a cause from its words alone, whatever program wrote them.

The upstream messages (`emblens.knowledge.upstream`) are what a known program says, word for word.
A program nobody harvested still says what went wrong in the field's own words: a vector store that
answers "vector dimension mismatch, expected 512, actual 3072", a tool that prints "Stream timeout:
no data from API for 30s", a paste that says "the model is not pulled". A *cue* is such a turn of
phrase, kept per catalogue id in `data/cues.yaml` of a rule folder (the format is in
the head of `rules/data/cues.yaml`): one regex over a single line (polars' engine: no look-around), how sure
its words make a reader (`weight`), lines it must name and lines it must not.

Cues are read only where nothing surer spoke: on the lines no rule explained, when no rule found an
error-level cause and no upstream message is near (`emblens.findings.possible`); a cue whose words
do not say a failure by themselves (`alone: false`) reads only lines that look like errors.

    >>> c = Cue.of({"id": "embed.dimension_mismatch", "regex": "(?i)dimension mismatch", "weight": 0.6,
    ...             "says": "a dimension mismatch", "examples": ["vector dimension mismatch, expected 512"],
    ...             "counters": ["dimension: 768"]}, "cues.yaml")
    >>> c.id, c.weight
    ('embed.dimension_mismatch', 0.6)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import polars as pl

from emblens.errors import RuleError
from emblens.knowledge.yamlsafe import safe_load

FILE = Path("data") / "cues.yaml"
MAX_FILE_BYTES = 1024 * 1024
MAX_LINE = 2048                 # characters of a line the cues read
MAX_WEIGHT = 0.7                # a cue is words, never proof
REQUIRED = ("id", "regex", "weight", "says", "examples")


@dataclass(frozen=True)
class Cue:
    id: str                     # a catalogue id
    regex: str                  # one line's words (polars / Rust regex syntax)
    weight: float               # how sure the words make a reader (0 < weight <= MAX_WEIGHT)
    says: str                   # what the words say, for the report ("the vector sizes differ")
    examples: tuple[str, ...]   # lines that must match
    counters: tuple[str, ...] = ()   # lines that must not
    alone: bool = True          # the words say a failure by themselves: the cue reads prose too
    where: str = ""             # file it came from

    @classmethod
    def of(cls, d: Mapping, where: str) -> Cue:
        missing = [k for k in REQUIRED if not d.get(k)]
        if missing:
            raise RuleError(f"{where}: a cue lacks {', '.join(missing)}" + (f" (id {d.get('id')})" if d.get("id") else ""))
        try:
            weight = float(d["weight"])
        except (TypeError, ValueError):
            raise RuleError(f"{where}: cue {d['id']}: weight must be a number") from None
        if not 0 < weight <= MAX_WEIGHT:
            raise RuleError(f"{where}: cue {d['id']}: weight {weight} is not in (0, {MAX_WEIGHT}]")
        return cls(id=str(d["id"]), regex=str(d["regex"]), weight=weight, says=str(d["says"]),
                   examples=_as_list(d["examples"]), counters=_as_list(d.get("counters")),
                   alone=bool(d.get("alone", True)), where=where)


def _as_list(v) -> tuple[str, ...]:
    return (v,) if isinstance(v, str) else tuple(str(x) for x in v or ())


@dataclass(frozen=True)
class Cues:
    cues: tuple[Cue, ...] = ()

    def __len__(self) -> int:
        return len(self.cues)

    def best(self, lines: pl.Series, errors: pl.Series | None = None) -> list[tuple[int, Cue]]:
        """For each line the surest cue its words hold, as (line index, cue); lines holding none
        are left out. Ties: the cue written first (the files list the narrower turns first).
        `errors`: which lines look like errors (a cue that is not `alone` reads only those);
        None: all of them."""
        if not self.cues or len(lines) == 0:
            return []
        head = lines.fill_null("").str.slice(0, MAX_LINE)
        best: dict[int, Cue] = {}
        for cue in self.cues:
            hit = head.str.contains(cue.regex).fill_null(False)
            if errors is not None and not cue.alone:
                hit = hit & errors
            for i in hit.arg_true().to_list():
                have = best.get(i)
                if have is None or cue.weight > have.weight:
                    best[i] = cue
        return sorted(best.items())

    def ids(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cues:
            out[c.id] = out.get(c.id, 0) + 1
        return dict(sorted(out.items()))


def load(paths: Sequence[str | Path], known_ids: set[str] | None = None) -> Cues:
    """The cues of these files, in order. Raises RuleError naming the file for a malformed one,
    a regex polars' engine does not take, or an id no rule has."""
    cues = _load(tuple(str(p) for p in paths))
    if known_ids is not None:
        for c in cues.cues:
            if c.id not in known_ids:
                raise RuleError(f"{c.where}: cue {c.id}: no rule has this id")
    return cues


@lru_cache(maxsize=8)
def _load(paths: tuple[str, ...]) -> Cues:
    out: list[Cue] = []
    for path in paths:
        p = Path(path)
        try:
            if p.stat().st_size > MAX_FILE_BYTES:
                raise RuleError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB, not read")
            doc = safe_load(p.read_text(encoding="utf-8"))
        except RuleError:
            raise
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise RuleError(f"{path}: cannot read the cues ({type(e).__name__}: {e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("cues"), list):
            raise RuleError(f"{path}: a cues file holds a `cues` list")
        for d in doc["cues"]:
            if not isinstance(d, dict):
                raise RuleError(f"{path}: each cue is a mapping (id, regex, weight, says, examples)")
            cue = Cue.of(d, path)
            try:
                pl.Series([""]).str.contains(cue.regex)
            except Exception as e:  # polars raises ComputeError for a pattern its engine refuses
                raise RuleError(f"{path}: cue {cue.id}: regex not accepted ({str(e).splitlines()[0][:200]})") from None
            out.append(cue)
    return Cues(tuple(out))


def files(folders: Sequence[Path]) -> list[Path]:
    """The cue files of these rule folders, in order."""
    return [Path(f) / FILE for f in folders if (Path(f) / FILE).is_file()]


def check(cues: Cues) -> list[str]:
    """What is wrong with the cues' own examples: an example no cue of its id is the surest on,
    a counter a cue of its id matches."""
    problems: list[str] = []
    for c in cues.cues:
        for ex in c.examples:
            got = cues.best(pl.Series([ex]))
            if not got or got[0][1].id != c.id:
                problems.append(f"{c.where}: cue {c.id}: example {ex!r} gives "
                                f"{got[0][1].id if got else 'nothing'}")
        for ex in c.counters:
            if pl.Series([ex]).str.contains(c.regex).fill_null(False)[0]:
                problems.append(f"{c.where}: cue {c.id}: counter {ex!r} matches")
    return problems
