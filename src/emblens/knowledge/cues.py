"""How people in the field name a cause from its words alone, whatever program wrote them.

The upstream messages (`emblens.knowledge.upstream`) are what a known program says, word for word.
A program nobody harvested still says what went wrong in the field's own words: a vector store that
answers "vector dimension mismatch, expected 512, actual 3072", a tool that prints "Stream timeout:
no data from API for 30s", a paste that says "the model is not pulled". A *cue* is such a turn of
phrase, kept per catalogue id in `data/cues.yaml` of a rule folder (the format is in
the head of `rules/data/cues.yaml`): one regex over a single line (the `regex` module's syntax), how sure
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

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import polars as pl
import regex

from emblens.errors import RuleError
from emblens.knowledge.yamlsafe import load_file

FILE = Path("data") / "cues.yaml"
MAX_FILE_BYTES = 1024 * 1024
MAX_LINE = 2048                 # characters of a line the cues read
MAX_LINES = 1000                # lines the cues read in one analysis
SEARCH_TIMEOUT_S = 0.05         # one cue on one line (a user's pattern may backtrack)
MAX_WEIGHT = 0.7                # a cue is words, never proof
MAX_BESIDE_LINES = 20_000       # lines read for a cue's `beside` words when polars cannot run them
REQUIRED = ("id", "regex", "weight", "says", "examples")
# the words before a cue's, in the same clause, that deny it ("it does not raise an exception or CUDA OOM", "no OOM"):
# a clause ends at punctuation or a conjunction ("it is not working and shows CUDA out of memory" says it), and
# "without" reaches only a few words ("without any OOM", not "without --enforce-eager I get an OOM")
_CLAUSE = r"(?:(?!\b(?:and|but|so|then|because|since|when|while|after|until|if|as|yet)\b)[^.,;:!?()\[\]\n])"
NEGATED = re.compile(rf"(?i)(?:\b(?:no|not|never|nor|neither)\b|n['’]t\b){_CLAUSE}{{0,32}}$|\bwithout\b{_CLAUSE}{{0,12}}$")
# ...unless the denial is of knowing, not of the failure ("I don't know why it OOMs", "no idea why")
NOT_A_DENIAL = re.compile(r"(?i)\b(?:know|knows|sure|understand|idea|clue|think|matter|seem|seems|why|how)\b")
# ...or a condition ("if I don't add the proxy, …": what happens without it)
CONDITION = re.compile(r"(?i)\b(?:if|when|whenever|unless|once)\b[^.,;:!?\n]{0,24}$")


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
    beside: str = ""            # words another line of the same input must hold (its context), or ""
    unless: str = ""            # words no line of the same input may hold (a context that rules the cause out), or ""

    @cached_property
    def compiled(self) -> regex.Pattern:
        return regex.compile(self.regex)

    @cached_property
    def compiled_beside(self) -> regex.Pattern | None:
        return regex.compile(self.beside) if self.beside else None

    @cached_property
    def compiled_unless(self) -> regex.Pattern | None:
        return regex.compile(self.unless) if self.unless else None

    def search(self, text: str) -> bool:
        """Whether `text` holds the cue's words, and not denied (`NEGATED`: "no OOM", "does not
        raise … CUDA OOM"); a pattern that runs past `SEARCH_TIMEOUT_S` on a line does not match it.

        >>> c = Cue.of({"id": "gpu.oom", "regex": "(?i)out of memory", "weight": 0.6, "says": "x", "examples": ["x"]}, "t")
        >>> c.search("CUDA out of memory at start-up"), c.search("it does not raise an exception or CUDA out of memory")
        (True, False)
        >>> c.search("no out of memory error, it hangs"), c.search("it is not working and shows out of memory")
        (False, True)
        >>> c.search("I don't know why it runs out of memory"), c.search("if I don't lower the share it runs out of memory")
        (True, True)
        """
        try:
            for m in self.compiled.finditer(text, timeout=SEARCH_TIMEOUT_S):
                before = text[max(0, m.start() - 64):m.start()]
                denied = NEGATED.search(before)
                if denied is None or NOT_A_DENIAL.search(before, denied.start()) or CONDITION.search(before[:denied.start()]):
                    return True
            return False
        except TimeoutError:
            return False

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
                   alone=bool(d.get("alone", True)), where=where, beside=str(d.get("beside") or ""),
                   unless=str(d.get("unless") or ""))


def _as_list(v) -> tuple[str, ...]:
    return (v,) if isinstance(v, str) else tuple(str(x) for x in v or ())


@dataclass(frozen=True)
class Cues:
    cues: tuple[Cue, ...] = ()

    def __len__(self) -> int:
        return len(self.cues)

    def best(self, lines: pl.Series, errors: pl.Series | None = None,
             context: pl.DataFrame | None = None, beside_held: set[int] | None = None) -> list[tuple[int, Cue]]:
        """For each line the surest cue its words hold, as (line index, cue); lines holding none
        are left out. Ties: the cue written first (the files list the narrower turns first).
        `errors`: which lines look like errors (a cue that is not `alone` reads only those);
        None: all of them. A cue with `beside` words reads a line only when a line of `context` (the
        analysis's events, `text`) holds them, and a cue with `unless` words only when none does
        (Ollama's `OLLAMA_HOST=0.0.0.0` beside "can't connect from another PC": not the loopback);
        without a context `beside` is taken as held and `unless` as not; `beside_held` says for which
        cues (by index) it is held instead (a cue's own example: its own context, no other's). The
        first `MAX_LINES` lines are read, each up to `MAX_LINE` characters.

        The cues are compiled once (`regex`) and read line by line: there are a few hundred lines
        at most, and polars would compile every pattern again for each call (60 ms a run)."""
        if not self.cues or len(lines) == 0:
            return []
        texts = [t[:MAX_LINE] for t in lines.fill_null("").head(MAX_LINES).to_list()]
        flags = errors.head(MAX_LINES).to_list() if errors is not None else [True] * len(texts)
        held = beside_held if beside_held is not None else self._beside(context) if context is not None else None
        barred = self._held(context, "unless") if context is not None else set()
        out: list[tuple[int, Cue]] = []
        for i, (text, error) in enumerate(zip(texts, flags)):
            best: Cue | None = None
            for k, cue in enumerate(self.cues):
                if (cue.beside and held is not None and k not in held) or k in barred:
                    continue
                if (best is None or cue.weight > best.weight) and (error or cue.alone) and cue.search(text):
                    best = cue
            if best is not None:
                out.append((i, best))
        return out

    def _beside(self, context: pl.DataFrame) -> set[int]:
        return self._held(context, "beside")

    def _held(self, context: pl.DataFrame, which: str) -> set[int]:
        """The cues whose `beside` (or `unless`) words some line of the analysis holds (one input or
        another: the inputs of one analysis are one incident's). Read by polars over the whole table; a
        pattern polars cannot run is read by `regex` over the first `MAX_BESIDE_LINES` lines."""
        out: set[int] = set()
        text = context["text"] if "text" in context.columns else pl.Series([], dtype=pl.String)
        for k, cue in enumerate(self.cues):
            words = getattr(cue, which)
            if not words:
                continue
            try:
                if text.str.contains(words).fill_null(False).any():
                    out.add(k)
                continue
            except pl.exceptions.ComputeError:      # look-around and the like: the `regex` module's syntax
                pass
            rx = cue.compiled_beside if which == "beside" else cue.compiled_unless
            try:
                if any(rx.search((t or "")[:MAX_LINE], timeout=SEARCH_TIMEOUT_S) for t in text.head(MAX_BESIDE_LINES).to_list()):
                    out.add(k)
            except TimeoutError:
                continue
        return out

    def ids(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cues:
            out[c.id] = out.get(c.id, 0) + 1
        return dict(sorted(out.items()))


def load(paths: Sequence[str | Path], known_ids: set[str] | None = None, trusted: Path | None = None) -> Cues:
    """The cues of these files, in order. Raises RuleError naming the file for a malformed one,
    a regex that does not compile, or an id no rule has. Files under `trusted` (the built-in
    rules) are compiled when first read, not when loaded."""
    cues = _load(tuple(str(p) for p in paths), str(trusted.resolve()) if trusted else None)
    if known_ids is not None:
        for c in cues.cues:
            if c.id not in known_ids:
                raise RuleError(f"{c.where}: cue {c.id}: no rule has this id")
    return cues


@lru_cache(maxsize=8)
def _load(paths: tuple[str, ...], trusted_dir: str | None = None) -> Cues:
    out: list[Cue] = []
    for path in paths:
        p = Path(path)
        trusted = trusted_dir is not None and p.resolve().is_relative_to(trusted_dir)
        doc = load_file(p, MAX_FILE_BYTES, f"{MAX_FILE_BYTES // 1024} KiB", "the cues")
        if not isinstance(doc, dict) or not isinstance(doc.get("cues"), list):
            raise RuleError(f"{path}: a cues file holds a `cues` list")
        for d in doc["cues"]:
            if not isinstance(d, dict):
                raise RuleError(f"{path}: each cue is a mapping (id, regex, weight, says, examples)")
            cue = Cue.of(d, path)
            if not trusted:     # the built-in cues are compiled by their tests; a user's when read
                try:
                    _ = cue.compiled, cue.compiled_beside, cue.compiled_unless
                except (regex.error, OverflowError, RecursionError) as e:
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
    for k, c in enumerate(cues.cues):
        for ex in c.examples:
            # the example is read as a line of its own cue's context: another cue's `beside` words are not there
            got = cues.best(pl.Series([ex]), beside_held={k})
            if not got or got[0][1].id != c.id:
                problems.append(f"{c.where}: cue {c.id}: example {ex!r} gives "
                                f"{got[0][1].id if got else 'nothing'}")
        for ex in c.counters:
            if c.search(ex):
                problems.append(f"{c.where}: cue {c.id}: counter {ex!r} matches")
    return problems
