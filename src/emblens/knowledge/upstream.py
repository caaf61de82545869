"""What the software in the path really says: the messages harvested from its source, as templates.

The data lives in rule folders (`data/messages/*.yaml`, one file per project; the format is in
`rules/data/messages/README.md`): each message's words as its program writes them, `{name}` where
the program fills a value in, the catalogue id the words evidence, and where they were read. A
message's words are found wherever they appear (a log line of any format, a paste's prose, an
exception, a JSON error body), whatever printed them: `Messages.match` gives each line the message
it holds, if any, and the values the placeholders took.

Finding them is one Aho-Corasick pass (polars' `str.extract_many`) for each message's longest run of
fixed words (its anchor), then, on the few lines holding an anchor, the message's own pattern.

    >>> m = Message.of({"template": "The model `{model}` does not exist.", "id": "model.not_found",
    ...                 "source": "serving_engine.py", "versions": "v0.4.0 - current",
    ...                 "instance": "The model `bge-m3` does not exist."}, "vLLM", "vllm-project/vllm")
    >>> m.anchor, m.search("ERROR: The model `bge-m4` does not exist. (404)")
    ('` does not exist', {'model': 'bge-m4'})
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import polars as pl

from emblens.errors import RuleError
from emblens.knowledge.yamlsafe import load_file

FOLDER = Path("data") / "messages"
FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)?\}")
MIN_ANCHOR = 8                 # bytes (UTF-8) of the longest fixed run: shorter ones are everywhere; a CJK
                               # character is three, so five of them (`无可用渠道`) are enough
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_LINE = 4096                # characters of a line the patterns read
MAX_CANDIDATES = 20_000        # lines holding an anchor that are read further (the rest: counted)
MIN_FOLDED = 24                # fixed characters a message needs to be found whatever the case of its words
MIN_COVER = 0.75               # share of a message's fixed words (by weight) a line must hold to be near it
MIN_WORDS = 3                  # ...and at least this many of them
SHORT_WORDS = 4                # a message of this many fixed words or fewer is near only with all of them
SHORT_SPAN = 3                 # ...within this many words of the line per word of the message
MIN_WEIGHT = 10.0              # ...weighing this much: three words that many messages share ("model", "not",
                               # "embedding") are not a message, however short it is
REQUIRED = ("template", "id", "source", "versions", "instance")


_PROSE_WORDS = frozenset({"that", "which", "who", "it", "this", "these", "those", "the", "a", "an", "one", "is", "was",
                          "are", "does", "do", "did", "not", "and", "or", "but", "if", "when", "then", "there", "here",
                          "i", "we", "you", "he", "she", "they", "my", "your", "our", "its", "any", "some"})
_FAILURE_HEAD = re.compile(r"(?i)^\W*(?:fail(?:ed)?|unable|cannot|can't|could not|error)\b")
_WRAPPER_WORDS = re.compile(r"(?i)\b(?:error|errors|failed|failure|exception|invalid)\b[^{}]*$")


@dataclass(frozen=True)
class Message:
    project: str
    repository: str
    template: str
    id: str                     # a catalogue id, or "none"
    source: str
    versions: str
    instance: str
    kind: str = ""
    note: str = ""

    @classmethod
    def of(cls, d: Mapping, project: str, repository: str) -> Message:
        return cls(project=project, repository=str(d.get("repository") or repository),
                   template=str(d["template"]), id=str(d["id"]), source=str(d["source"]),
                   versions=str(d["versions"]), instance=str(d["instance"]), kind=str(d.get("kind") or ""),
                   note=str(d.get("note") or ""))

    @cached_property
    def fixed(self) -> tuple[str, ...]:
        """The fixed text between the placeholders, in order."""
        return tuple(FIELD.split(self.template)[::2])

    @cached_property
    def anchor(self) -> str:
        """The longest fixed run of the message (whitespace kept as written)."""
        # split where a paste may change the spacing (a line break, a run of spaces markdown collapses)
        runs = [r.strip() for part in self.fixed for r in re.split(r"\n|\s{2,}", part)]
        if runs:        # the message's closing full stop may be missing from a line (`pattern`)
            runs[-1] = runs[-1].rstrip(".!。")
        return max(runs, key=len) if runs else ""

    @cached_property
    def fixed_words(self) -> frozenset[str]:
        """The words of the message outside its placeholders."""
        return _message_words(self)

    @cached_property
    def wraps(self) -> bool:
        """A `none` message that only wraps another failure's words: a failure's label before a last
        placeholder (`Input validation error: {}`, `pull model manifest: {}`). It says a failure
        happened, not which: a line holding it and no surer message is left unknown, for the
        nearest message and the cues to read what it wraps."""
        return (self.id == "none" and bool(FIELD.search(self.template)) and self.template.rstrip().endswith("}")
                and (bool(_WRAPPER_WORDS.search(self.fixed[-2] if len(self.fixed) > 1 else ""))
                     # or a failure's words in its first part, the last placeholder after only punctuation
                     # (RAGFlow's `Fail to access embedding model({}).{}`)
                     or (len(self.fixed) > 2 and not re.search(r"\w", self.fixed[-2])
                         and bool(_FAILURE_HEAD.search(self.fixed[0])))))

    @cached_property
    def words(self) -> int:
        """How many fixed characters the message has: the longer, the surer a match."""
        return sum(len(p.strip()) for p in self.fixed)

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        """The message as a regex: fixed text literal (any run of spaces for a space), each
        placeholder any text within the line (a first or last one: up to a space or a quote; a last one also
        up to a closing bracket)."""
        out: list[str] = []
        names: set[str] = set()
        pieces = FIELD.split(self.template)
        # pieces: fixed, name, fixed, name, ..., fixed
        n_fields = (len(pieces) - 1) // 2
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                # the full stop that ends a message is often not written or not pasted (a logger's
                # format, a cut line): the words before it are the message
                stop = i == len(pieces) - 1 and piece.rstrip()[-1:] in (".", "!", "。")
                words = piece.rstrip()[:-1] if stop else piece
                out.append(r"\s+".join(re.escape(w) for w in re.split(r"\s+", words)) if words.strip()
                           else (r"\s*" if words else ""))
                if stop:
                    out.append("[.!。]?")
                continue
            k = i // 2
            name = piece if piece and piece not in names else f"_{k}"
            names.add(name)
            last = k == n_fields - 1 and not pieces[i + 1].strip()
            first = k == 0 and not pieces[0].strip()
            # a value at either end stops at a space or a quote; a last one also at a bracket that closes
            # around the message (`[Error: connect ECONNREFUSED 127.0.0.1:11434]`: the port is 11434)
            value = r"[^\s'\"`\])}>,;]+" if last else r"[^\s'\"`]+" if first else r"[^\n]*?"
            out.append(f"(?P<{name}>{value})")
        return re.compile("".join(out))

    @cached_property
    def folded(self) -> re.Pattern[str]:
        """`pattern`, whatever the case of its fixed words."""
        return re.compile(self.pattern.pattern, re.IGNORECASE)

    def search(self, text: str) -> dict[str, str] | None:
        """The placeholders' values when `text` holds the message, else None."""
        m = self.pattern.search(text[:MAX_LINE])
        if m is None and self.words >= MIN_FOLDED:
            # a message retyped or pasted in other case (an issue's title: "pooling type 'none' is not OAI compatible");
            # not a short one: "Model {} not exist." in other case is any sentence ("a model that does not exist")
            m = self.folded.search(text[:MAX_LINE])
        if m is None:
            return None
        values = {k: v for k, v in m.groupdict().items() if not k.startswith("_")}
        # a value is a name, a number, a path: a sentence's own word in its place ("a model that
        # does not exist") is prose that shares the message's words, not the message
        if any((v or "").strip().lower() in _PROSE_WORDS for v in m.groups()):
            return None
        return values

    def narrows(self, other: Message) -> bool:
        """Whether this message is `other` with some of its values written out: `other`'s fixed
        runs appear in this one's template, in order, and this one has more fixed words."""
        if self.words <= other.words:
            return False
        at = 0
        for run in (r for r in other.fixed if r.strip()):
            at = self.template.find(run.strip(), at)
            if at < 0:
                return False
            at += len(run.strip())
        return True

    @property
    def label(self) -> str:
        """How a report names it: the project and the fixed words ("vLLM's 'The model … does not exist.'")."""
        words = FIELD.sub("…", self.template).strip()
        return f"{self.project}{LABEL_JOIN}{words[:160]}'"


LABEL_JOIN = "'s '"      # between a message's project and its words in its label


def project_of(label: str) -> str:
    """The project a message's `label` names.

    >>> project_of("LM Studio's 'Input does not fit in context length. …'")
    'LM Studio'
    """
    return label.split(LABEL_JOIN, 1)[0]


# what fills a message's placeholders, set aside before comparing words (as Drain masks variables)
_VALUES = re.compile(r"'[^'\n]{0,200}'|\"[^\"\n]{0,200}\"|`[^`\n]{0,200}`|(?:[A-Za-z]:)?(?:[/\\][\w.@+~-]+){2,}|"
                     r"\b0x[0-9a-fA-F]+\b|\b[0-9a-f]{8,}\b|\d+(?:\.\d+)*")
_STATUS = re.compile(r"(?<![\w.])[45]\d\d(?![\w.])")   # an HTTP status among a text's values
_WORD = re.compile(r"[a-z][a-z_'-]*[a-z]|[a-z]")
# words too common to tell one message from another
_STOP = frozenset("the a an of to is in for and or be on at by with as it this that was are from "
                  "please your you can has have been".split())


def words(text: str) -> list[str]:
    """The words of a text with its values set aside, lowercased, common words dropped."""
    return [w for w in _WORD.findall(_VALUES.sub(" ", text[:MAX_LINE]).lower()) if w not in _STOP]


def _span(said: list[str], wanted: frozenset[str]) -> int:
    """The fewest consecutive words of `said` that hold every word of `wanted` (all of them are there)."""
    need, have, best, left = len(wanted), Counter(), len(said), 0
    held = 0
    for right, w in enumerate(said):
        if w in wanted:
            have[w] += 1
            held += have[w] == 1
        while held == need:
            best = min(best, right - left + 1)
            lw = said[left]
            if lw in wanted:
                have[lw] -= 1
                held -= have[lw] == 0
            left += 1
    return best


def _message_words(m: Message) -> frozenset[str]:
    return frozenset(words(" ".join(FIELD.split(m.template)[::2])))


@dataclass(frozen=True)
class Near:
    message: Message
    cover: float             # share of the message's fixed words in the line
    exact: bool = False


class Nearest:
    """The messages as an inverted index of their fixed words. A word counts by how rare it is
    among the messages (its inverse document frequency): "model", "not" and "does" are in many,
    "repository" in few, so sharing the common ones makes no message near."""

    def __init__(self, messages: Messages):
        self.messages = messages.messages
        self.words = [_message_words(m) for m in self.messages]
        self.index: dict[str, list[int]] = {}
        for i, ws in enumerate(self.words):
            if len(ws) >= MIN_WORDS:
                for w in ws:
                    self.index.setdefault(w, []).append(i)
        # an HTTP status a message's fixed words hold (`status code: 404; body: {body}`): the line must say it
        # too, since the words are masked of values and `status code: 500, with response body` is another failure
        self.statuses = [frozenset(_STATUS.findall(" ".join(FIELD.split(m.template)[::2]))) for m in self.messages]
        n = max(len(self.messages), 1)
        self.weight = {w: math.log((n + 1) / len(ix)) for w, ix in self.index.items()}
        self.total = [sum(self.weight.get(w, 0.0) for w in ws) for ws in self.words]

    def near(self, text: str) -> Near | None:
        """The message nearest to `text`, if near enough: at least `MIN_WORDS` of its fixed words
        and `MIN_COVER` of their weight (ties: more words shared, then a failure before `none`)."""
        hits: Counter[int] = Counter()
        got: dict[int, float] = {}
        said_words = words(text)
        for w in set(said_words):
            for i in self.index.get(w, ()):
                hits[i] += 1
                got[i] = got.get(i, 0.0) + self.weight[w]
        best: tuple[float, int, bool, int, float] | None = None
        said: frozenset[str] | None = None
        for i, n in hits.items():
            if n < MIN_WORDS or not self.total[i] or got[i] < MIN_WEIGHT:
                continue
            if self.statuses[i]:
                said = frozenset(_STATUS.findall(text[:MAX_LINE])) if said is None else said
                if not self.statuses[i] <= said:
                    continue
            # (rounded: the weights are summed in the order of a set, and a float sum's last digit follows it,
            # so a line holding every word must not come out a hair under 1.0 on one run and not another)
            cover = min(1.0, round(got[i] / self.total[i], 9))
            # a short message (four fixed words or fewer) is near only with all its words: three common
            # ones of four ("connect", "OpenAI", "API") are any sentence about the topic
            if cover < MIN_COVER or (len(self.words[i]) <= SHORT_WORDS and cover < 1.0):
                continue
            # ...and with them close together: "openai api" early in a sentence and "error … connection" at
            # its end is a person describing the topic, not LightRAG's `OpenAI API Connection Error: …`
            if len(self.words[i]) <= SHORT_WORDS and _span(said_words, self.words[i]) > SHORT_SPAN * len(self.words[i]):
                continue
            # the nearest: the most of a message's weight a line holds, scaled by its cover (a long message
            # the line holds most of is nearer than a three-word one it holds whole)
            key = (round(got[i] * cover, 6), n, self.messages[i].id != "none", i, cover)
            if best is None or key[:3] > best[:3]:
                best = key
        if best is None:
            return None
        return Near(self.messages[best[3]], round(best[4], 2))


@dataclass(frozen=True)
class Messages:
    messages: tuple[Message, ...] = ()
    # id -> the ids it is the root cause of (the rules' `explains:`, closed over): of two failures a line
    # holds, the cause wins (TEI's `Could not start backend: Model is not supported: unknown variant …`
    # is an architecture the release lacks, not only a start-up that failed)
    explains: Mapping[str, frozenset[str]] = field(default_factory=dict, compare=False, hash=False)

    def with_explains(self, edges: Mapping[str, Sequence[str]]) -> Messages:
        """These messages, ranking by the rules' `explains:` edges (transitively)."""
        closed: dict[str, set[str]] = {k: set(v) for k, v in edges.items() if v}
        for _ in range(len(closed)):
            grew = False
            for k, v in closed.items():
                more = set().union(*(closed.get(x, set()) for x in v)) - v - {k}
                if more:
                    v |= more
                    grew = True
            if not grew:
                break
        return Messages(self.messages, {k: frozenset(v) for k, v in closed.items()})

    def _beats(self, i: int, j: int) -> bool:
        """Whether message i is the surer reading of a line than message j: a failure before a
        `none`, the same message with more of its values written out (LiteLLM's `NotFoundError: …
        {'detail': 'Not Found'}` is a route, not a model), the cause before its symptom, then the one
        with more fixed words."""
        a, b = self.messages[i], self.messages[j]
        if (a.id != "none") != (b.id != "none"):
            return a.id != "none"
        if a.narrows(b) or b.narrows(a):
            return a.narrows(b)
        if a.id != b.id:
            if b.id in self.explains.get(a.id, ()):
                return True
            if a.id in self.explains.get(b.id, ()):
                return False
        return a.words > b.words

    def __len__(self) -> int:
        return len(self.messages)

    @cached_property
    def _anchors(self) -> tuple[tuple[str, ...], dict[str, tuple[int, ...]]]:
        by_anchor: dict[str, list[int]] = {}
        for i, m in enumerate(self.messages):
            if len(m.anchor.encode()) >= MIN_ANCHOR:
                by_anchor.setdefault(m.anchor.lower(), []).append(i)   # a message retyped in lower case is it too
        # the surest first: more fixed words win a tie between messages sharing a line
        return tuple(by_anchor), {a: tuple(sorted(ix, key=lambda i: -self.messages[i].words)) for a, ix in by_anchor.items()}

    def match(self, lines: pl.Series) -> pl.DataFrame:
        """For each line: `msg` (the index of the message it holds, null when none) and `msg_values`
        (the placeholders' values, `name=value; …`). A line holding several: the one with the most
        fixed words."""
        anchors, by_anchor = self._anchors
        n = len(lines)
        if not anchors or n == 0:
            return pl.DataFrame({"msg": pl.Series([None] * n, dtype=pl.Int64),
                                 "msg_values": pl.Series([None] * n, dtype=pl.String)})
        head = lines.str.slice(0, MAX_LINE)
        # the anchors are lower case, and so are the lines they are sought in: Aho-Corasick builds its
        # automaton for every call, four times slower for ascii_case_insensitive (35 ms for 2,400 anchors)
        # (and one automaton, not two: the anchors each line holds, whose lines holding any are the candidates)
        held = head.str.to_lowercase().str.extract_many(list(anchors), overlapping=True)
        idx = (held.list.len() > 0).fill_null(False).arg_true()[:MAX_CANDIDATES]
        found: list[int | None] = [None] * len(idx)
        values: list[str | None] = [None] * len(idx)
        if len(idx):
            cand = head.gather(idx)
            which = held.gather(idx).to_list()
            for k, (text, hits) in enumerate(zip(cand.to_list(), which)):
                tried: set[int] = set()
                # a line holding several: a failure's message before a wrapper's that is none (urllib3's
                # `Max retries exceeded … (Caused by …Read timed out.)`), then the one with more fixed words;
                # but a `none` message that is the failure's own words with a value fixed (LM Studio's
                # `Unexpected endpoint or method. (OPTIONS …)`: a browser's preflight) is the surer one
                best: tuple[None, int, dict[str, str]] | None = None
                benign: list[tuple[int, dict[str, str]]] = []
                for a in hits or ():
                    for i in by_anchor.get(a, ()):
                        if i in tried:
                            continue
                        tried.add(i)
                        got = self.messages[i].search(text)
                        if got is None:
                            continue
                        if self.messages[i].id == "none":
                            benign.append((i, got))
                        if best is None or self._beats(i, best[1]):
                            best = (None, i, got)
                if best is not None and benign and self.messages[best[1]].id != "none":
                    narrower = [(i, got) for i, got in benign if self.messages[i].narrows(self.messages[best[1]])]
                    if narrower:
                        i, got = max(narrower, key=lambda b: self.messages[b[0]].words)
                        best = (None, i, got)
                if best is not None and self.messages[best[1]].wraps:
                    best = None          # only a wrapper: what it wraps is read as an unknown line
                if best is not None:
                    found[k] = best[1]
                    values[k] = "; ".join(f"{name}={v}" for name, v in best[2].items()) or None
        msg = pl.Series([None] * n, dtype=pl.Int64).scatter(idx, pl.Series(found, dtype=pl.Int64)) if len(idx) \
            else pl.Series([None] * n, dtype=pl.Int64)
        vals = pl.Series([None] * n, dtype=pl.String).scatter(idx, pl.Series(values, dtype=pl.String)) if len(idx) \
            else pl.Series([None] * n, dtype=pl.String)
        return pl.DataFrame({"msg": msg, "msg_values": vals})

    def columns(self, events: pl.DataFrame) -> pl.DataFrame:
        """The event table with `msg_id`, `msg_template` and `msg_values` filled where a row's text
        holds a message (JSON string escapes undone first: an error body quotes a message)."""
        if not self.messages or events.height == 0 or "text" not in events.columns:
            return events
        text = events["text"].str.replace_many(['\\"', "\\n", "\\/", "\\t"], ['"', "\n", "/", " "])
        found = self.match(text)
        if found["msg"].null_count() == events.height:
            return events
        ids = pl.Series([m.id for m in self.messages], dtype=pl.String)
        labels = pl.Series([m.label for m in self.messages], dtype=pl.String)
        at = found["msg"]
        return events.with_columns(ids.gather(at).alias("msg_id"), labels.gather(at).alias("msg_template"),
                                   found["msg_values"].alias("msg_values"))

    @cached_property
    def nearest(self) -> Nearest:
        """The messages indexed by their fixed words, to find the one nearest a line."""
        return Nearest(self)

    def anchors(self, ids: set[str] | None = None) -> list[str]:
        """The anchors of the messages (of these ids), for the line prefilter."""
        return sorted({m.anchor for m in self.messages
                       if len(m.anchor.encode()) >= MIN_ANCHOR and (ids is None or m.id in ids)})

    def ids(self) -> dict[str, int]:
        """How many messages evidence each id (`none` included)."""
        out: dict[str, int] = {}
        for m in self.messages:
            out[m.id] = out.get(m.id, 0) + 1
        return dict(sorted(out.items()))


def files(folders: Sequence[Path]) -> list[Path]:
    """The message files of these rule folders, in order."""
    out: list[Path] = []
    for folder in folders:
        d = Path(folder) / FOLDER
        if d.is_dir():
            out += sorted(p for p in d.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return out


def load(paths: Sequence[str | Path]) -> Messages:
    """The messages of these files. Raises RuleError naming the file for a malformed one."""
    return _load(tuple(str(p) for p in paths))


@lru_cache(maxsize=8)
def _load(paths: tuple[str, ...]) -> Messages:
    out: list[Message] = []
    for path in paths:
        p = Path(path)
        doc = load_file(p, MAX_FILE_BYTES, f"{MAX_FILE_BYTES // (1024 * 1024)} MiB", "the messages")
        if not isinstance(doc, dict) or not isinstance(doc.get("messages"), list):
            raise RuleError(f"{path}: a messages file holds `project`, `repository` and a `messages` list")
        project, repository = str(doc.get("project") or p.stem), str(doc.get("repository") or "")
        for k, d in enumerate(doc["messages"], 1):
            missing = [key for key in REQUIRED if not isinstance(d, dict) or not d.get(key)]
            if missing:
                raise RuleError(f"{path}: message {k} lacks {', '.join(missing)}")
            out.append(Message.of(d, project, repository))
    return Messages(tuple(out))
