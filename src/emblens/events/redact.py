"""Secret masking: the one place where tokens, keys and passwords are removed.

Applied to every line before it enters the event table, and once more to every column that can
hold user text when the table is built (`Redactor.frame`), so no report, export or log of emblens
can show a secret. The shape survives (`<empty>`, a known placeholder such as `EMPTY`, or
`<key: 32 chars>` / `<sk-key: 51 chars>`), because the shape is often the diagnosis.

Two kinds of catalogue entry (`CATALOGUE` lists them with an example each):
- by key name: a value after a name that says it is a secret (`api_key=`, `"password": `,
  `X-API-Key:`, `--hf-token`, `?key=`, `AWS_SECRET_ACCESS_KEY=`, `Cookie:`), whatever the value;
- by shape: values that are secrets wherever they stand (`sk-…`, `hf_…`, `ghp_…`, `AKIA…`, JWTs,
  `Bearer …`, a DSN's password, private-key blocks).

Masking is a pure function of the text (`mask_text`), except for what a run adds: the user's own
patterns (`--redact FILE`) and the tally of what was masked. Those live in the run's `Redactor`,
never in this module, so analyses in one process (threads, a fleet) cannot see each other's.

Every pattern is linear in the line: identifiers are matched possessively from their first
character only, so a 400 KB line of one word costs one pass, not one pass per character.

>>> mask_text("Authorization: Bearer sk-abcdefghijklmnopqrstuvwx")
'Authorization: Bearer <sk-key: 27 chars>'
>>> mask_text("api_key='EMPTY'")
"api_key='EMPTY'"
>>> mask_text("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
'AWS_SECRET_ACCESS_KEY=<key: 40 chars>'
>>> mask_text("#new-token: 2048, token usage: 0.01")
'#new-token: 2048, token usage: 0.01'
>>> once = mask_text("{'api_key': ['s3cret-demo-key', 'other-key-2']}")
>>> once, mask_text(once) == once
("{'api_key': ['<key: 15 chars>', '<key: 11 chars>']}", True)
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

# Values that are not secrets: what people pass when the server has no --api-key.
PLACEHOLDERS = frozenset(
    v.lower()
    for v in (
        "EMPTY", "none", "null", "nil", "dummy", "fake", "placeholder", "sk-xxx", "sk-no-key-required",
        "token-abc123", "your-api-key", "your_api_key", "YOUR_API_KEY", "xxx", "***", "not-needed",
        "not-used", "na", "n/a", "test", "abc123", "sk-1234", "changeme", "true", "false",
    )
)

# a name says its value is secret when it ends in one of these (after camelCase and -/. become _)
SECRET_NAME = re.compile(
    r"(?:^|_)(?:api_?key|key|keys|token|secret|password|passwd|pwd|pass|credentials?|signature|sig|cookie|"
    r"session_?id|auth|authorization|private_?key|access_?key|subscription_?key|bearer|jwt)$"
)
# ...but not these: numbers and names that only look like it
NOT_SECRET_NAME = re.compile(r"(?:^|_)(?:new_token|max_token|num_token|total_token|n_token|sort_key|primary_key|"
                             r"foreign_key|cache_key|key_value|partition_key)$")

# a value: up to a space, quote, comma, semicolon or closing bracket (possessive: no backtracking)
_VALUE = r"(?!<|Some\()[^\s\"',;)\]}>]++"
_NAME = r"(?<![A-Za-z0-9_.\-])([A-Za-z][A-Za-z0-9_.\-]*+)"

# (pattern, index of the group holding the secret, index of the name group or 0, what it masks for the
# report's "masked" summary: counts by kind, never values). Order matters.
_PATTERNS: tuple[tuple[re.Pattern[str], int, int, str], ...] = (
    # private-key blocks (a pasted .pem): everything between the markers on the line
    (re.compile(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----)([^-]++)"), 2, 0, "private key"),
    # an authorization scheme and its credential: Bearer wherever it stands, the others in an
    # Authorization header
    (re.compile(r"(?i)((?<![A-Za-z])bearer[ \t]++)(" + _VALUE + ")"), 2, 0, "bearer token"),
    (re.compile(r"(?i)(authorization[\"']?[ \t]*+[:=][ \t]*+[\"']?(?:token|api-key|key|digest)[ \t]++)(" + _VALUE + ")"), 2, 0, "authorization credential"),
    (re.compile(r"(?i)((?<![A-Za-z])basic[ \t]++)([A-Za-z0-9+/=]{6,}+)"), 2, 0, "basic credential"),
    # cookies: every value of a Cookie or Set-Cookie header, to the end of the header
    (re.compile(r"(?i)((?<![A-Za-z\-])(?:set-)?cookie[\"']?[ \t]*+[:=][ \t]*+[\"']?)([^\"'\n]++)"), 2, 0, "cookie"),
    # a command-line flag named like a secret, and its value
    (re.compile(r"(?<![\w\-])(--)([A-Za-z0-9][A-Za-z0-9\-]*+)((?:[ \t]++|=)[\"']?)(" + _VALUE + ")"), 4, 2, "command-line secret"),
    # name: value, name=value, "name": "value", ?name=value (query keys), NAME=value (environment);
    # a list after the name has every element masked by the next pattern
    # (in a multi-line text, such as a pretty-printed JSON body, the value may be on the next line)
    # a Rust Option as its Debug prints it (text-embeddings-inference logs its arguments so):
    # `api_key: Some("…")`, and inside a JSON log line `api_key: Some(\"…\")`
    (re.compile(_NAME + r"([ \t]*+[:=][ \t]*+Some\(\\?[\"'])([^\"'\\\n]++)"), 3, 1, "secret field"),
    (re.compile(_NAME + r"((?>[\"']?\]?[ \t]*+[:=]\s*+\[?\s*+[\"']?))(" + _VALUE + ")"), 3, 1, "secret field"),
    (re.compile(r"(?i)((?:api_?key|token|secret|password)[\"']?[ \t]*+[:=][ \t]*+\[[^\]\n]*?,(?>[ \t]*+[\"']?))(" + _VALUE + ")"), 2, 0, "secret field"),
    # a DSN's password: scheme://user:password@host (the password may hold / or :)
    (re.compile(r"((?<![\w+.\-])[A-Za-z][\w+.\-]*+://[^/\s:@]*+:)([^\s@]++)(@)"), 2, 0, "DSN password"),
    # the OpenAI SDK's and servers' echo of a wrong key
    (re.compile(r"(Incorrect API key provided: )(" + _VALUE + ")"), 2, 0, "echoed API key"),
    # shapes that are secrets anywhere
    (re.compile(r"()((?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{12,}+)"), 2, 0, "sk- key"),
    (re.compile(r"()((?<![A-Za-z0-9])(?:hf|gsk|r8|xai)_[A-Za-z0-9]{20,}+)"), 2, 0, "hf/groq/replicate/xai token"),
    (re.compile(r"()((?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{30,}+|github_pat_[A-Za-z0-9_]{40,}+))"), 2, 0, "GitHub token"),
    (re.compile(r"()((?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9\-]{10,}+)"), 2, 0, "Slack token"),
    (re.compile(r"()((?<![A-Za-z0-9])(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}+)"), 2, 0, "Stripe key"),
    (re.compile(r"()((?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z]))"), 2, 0, "AWS access key id"),
    (re.compile(r"()((?<![A-Za-z0-9])AIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-]))"), 2, 0, "Google API key"),
    (re.compile(r"()((?<![A-Za-z0-9])ya29\.[0-9A-Za-z_\-]{20,}+)"), 2, 0, "Google OAuth token"),
    (re.compile(r"()((?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,}+\.eyJ[A-Za-z0-9_\-]{8,}+\.[A-Za-z0-9_\-]*+)"), 2, 0, "JWT"),
)

# One linear-time pattern (the Rust engine) that finds every line any of the above could touch;
# only those lines go through the Python replacement, so big logs are masked at polars speed.
PREFILTER = (
    r"(?i)(?:key|keys|token|secret|passw(?:or)?d|pwd|pass|credentials?|signature|sig|cookie|session_?id|auth|"
    r"authorization|jwt)[\"'\]]?[ \t]*[:=]|(?:bearer|basic)[ \t]+[^\s'\"]|--[a-z-]*(?:key|token|secret|passw|pwd)|"
    r"PRIVATE KEY|://[^/\s:@]*:[^\s@]+@|Incorrect API key|sk-[A-Za-z0-9_-]{12}|(?:hf|gsk|r8|xai)_[A-Za-z0-9]{20}|"
    r"gh[pousr]_|github_pat_|xox[abprs]-|_live_|_test_|AKIA|ASIA|AIza|ya29\.|eyJ"
)

# The catalogue the masking test plants, one example per entry: (name, line holding it, secret).
CATALOGUE: tuple[tuple[str, str, str], ...] = (
    ("bearer header", "Authorization: Bearer Zq8vT2mLwX4pR7nK1sD9", "Zq8vT2mLwX4pR7nK1sD9"),
    ("basic header", "Authorization: Basic dXNlcjpzM2NyZXRQYXNz", "dXNlcjpzM2NyZXRQYXNz"),
    ("token scheme", "Authorization: Token 9f8e7d6c5b4a3928171605f4", "9f8e7d6c5b4a3928171605f4"),
    ("proxy authorization", "Proxy-Authorization: Bearer Pq2wE4rT6yU8iO0pA1sD", "Pq2wE4rT6yU8iO0pA1sD"),
    ("x-api-key header", "X-API-Key: a7f3c9e1b5d2468097fedcba", "a7f3c9e1b5d2468097fedcba"),
    ("api-key header", "api-key: 3c4d5e6f7a8b9c0d1e2f3a4b", "3c4d5e6f7a8b9c0d1e2f3a4b"),
    ("azure subscription header", "Ocp-Apim-Subscription-Key: 0a1b2c3d4e5f60718293a4b5c6d7e8f9",
     "0a1b2c3d4e5f60718293a4b5c6d7e8f9"),
    ("google api key header", "x-goog-api-key: Gk4mNp7qRs0tUv3wXy6zAb9c", "Gk4mNp7qRs0tUv3wXy6zAb9c"),
    ("cookie header", "Cookie: sessionid=Ck9dLm2nPq5rSt8u; csrftoken=Ab3cDe6fGh9i", "Ck9dLm2nPq5rSt8u"),
    ("set-cookie header", "Set-Cookie: session=Sv7bNm4kLj1hGf8d; Path=/; HttpOnly", "Sv7bNm4kLj1hGf8d"),
    ("query key", "GET /v1/models?key=Qk5jHg8fDs2aZx7c HTTP/1.1", "Qk5jHg8fDs2aZx7c"),
    ("query access_token", "POST /v1/embeddings?access_token=At6yHn3jUm9kIl2o HTTP/1.1", "At6yHn3jUm9kIl2o"),
    ("json api_key", '{"model": "m", "api_key": "Jk2lMn5oPq8rSt1u"}', "Jk2lMn5oPq8rSt1u"),
    ("json key", '{"key": "Kx4cVb7nMq0wEr3t", "input": "hi"}', "Kx4cVb7nMq0wEr3t"),
    ("json password", '{"user": "ada", "password": "Pw9oIu6yTr3eWq0p"}', "Pw9oIu6yTr3eWq0p"),
    ("json camelCase token", '{"accessToken": "Ct5rEw2qAz8sXd4c"}', "Ct5rEw2qAz8sXd4c"),
    ("python dict key", "{'api_key': 'Dk3fGh6jKl9zXc2v'}", "Dk3fGh6jKl9zXc2v"),
    ("second key of a list", "args: {'api_key': ['Lk1aSd4fGh7jKl0z', 'Lk2qWe5rTy8uIo1p']}", "Lk2qWe5rTy8uIo1p"),
    ("env api key", "export OPENAI_API_KEY=Ek7uYt4rEw1qAs8d", "Ek7uYt4rEw1qAs8d"),
    ("env aws secret", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("env hf token", "HF_TOKEN=Hm3nBv6cXz9lKj2h", "Hm3nBv6cXz9lKj2h"),
    ("env inside another field", "env: AWS_SECRET_ACCESS_KEY=Nv7bQw2eRt5yUi8oPa1sDf4gHj7kLz0x",
     "Nv7bQw2eRt5yUi8oPa1sDf4gHj7kLz0x"),
    ("env password", "DB_PASSWORD=Dp8oLk5jHg2fDs9a", "Dp8oLk5jHg2fDs9a"),
    ("docker -e", "docker run -e VLLM_API_KEY=Vk4rFt7gBy0hNu3j vllm/vllm-openai", "Vk4rFt7gBy0hNu3j"),
    ("flag api-key", "vllm serve m --api-key Fk2wSx5eDc8rFv1t", "Fk2wSx5eDc8rFv1t"),
    ("flag hf-token=", "python serve.py --hf-token=Ht6yGv3bNh9uJm2k", "Ht6yGv3bNh9uJm2k"),
    ("flag password", "mysql --password Mp1qAz4wSx7eDc0r", "Mp1qAz4wSx7eDc0r"),
    ("dsn password with /", "postgresql://app:Pa/ss:w0rd9Xq@db.internal:5432/app", "Pa/ss:w0rd9Xq"),
    ("redis dsn", "redis://:Rd5tGb8yHn1uJm4i@cache:6379/0", "Rd5tGb8yHn1uJm4i"),
    ("openai sk key", "client = OpenAI(api_key=sk-proj-Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8)", "sk-proj-Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8"),
    ("anthropic key", "key sk-ant-api03-Zx9Cv8Bn7Mq6Wl5Ek4Rj3", "sk-ant-api03-Zx9Cv8Bn7Mq6Wl5Ek4Rj3"),
    ("hf token shape", "loading with hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"),
    ("groq key", "GROQ=gsk_Qw3Er6Ty9Ui2Op5As8Df1Gh4Jk7L", "gsk_Qw3Er6Ty9Ui2Op5As8Df1Gh4Jk7L"),
    ("github token", "remote https://ghp_Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78@github.com",
     "ghp_Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78"),
    ("slack token", "SLACK xoxb-1234567890-AbCdEfGhIjKl", "xoxb-1234567890-AbCdEfGhIjKl"),
    ("stripe key", "charge with sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("aws access key id", "credentials AKIAIOSFODNN7EXAMPLE in use", "AKIAIOSFODNN7EXAMPLE"),
    ("gcp api key", "maps AIzaSyA1B2C3D4E5F6G7H8I9J0K1L2M3N4O5P6Q in config", "AIzaSyA1B2C3D4E5F6G7H8I9J0K1L2M3N4O5P6Q"),
    ("google oauth token", "got ya29.a0AfH6SMBxYz1234567890abcdefg from oauth", "ya29.a0AfH6SMBxYz1234567890abcdefg"),
    ("jwt", "session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpM",
     "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpM"),
    ("private key block", "-----BEGIN RSA PRIVATE KEY-----MIIEpAIBAAKCAQEA7xYz9-----END RSA PRIVATE KEY-----",
     "MIIEpAIBAAKCAQEA7xYz9"),
    ("wrong key echoed", "Incorrect API key provided: Wk3eRt6yUi9oPa2s. You can find your API key at",
     "Wk3eRt6yUi9oPa2s"),
    ("process command line", "python serve.py --api-key Pc8vBn5mLk2jHg9f", "Pc8vBn5mLk2jHg9f"),
    ("rust option debug", 'Args { port: 80, api_key: Some("Ro4xWq7eTy1uIp3a"), json_output: false }', "Ro4xWq7eTy1uIp3a"),
    ("rust option in a json log line", '{"message":"Args { api_key: Some(\\"Rj2kFh5gDs8aLz0x\\"), port: 80 }"}', "Rj2kFh5gDs8aLz0x"),
)


def shape(value: str) -> str:
    """Describe a credential without revealing it."""
    v = value.strip().strip("'\"")
    if not v:
        return "<empty>"
    if v.startswith("<") and v.endswith(">"):
        return v  # already masked
    if v.lower() in PLACEHOLDERS:
        return v
    if v.startswith("sk-"):
        return f"<sk-key: {len(v)} chars>"
    if v.startswith("hf_"):
        return f"<hf-token: {len(v)} chars>"
    return f"<key: {len(v)} chars>"


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def secret_name(name: str) -> bool:
    """Whether a key, header, flag or variable name says its value is a secret.

    >>> [secret_name(n) for n in ("OPENAI_API_KEY", "apiKey", "X-API-Key", "max_tokens", "#new-token")]
    [True, True, True, False, False]
    """
    n = re.sub(r"[\-.]", "_", _CAMEL.sub("_", name.lstrip("-#"))).lower()
    return bool(SECRET_NAME.search(n)) and not NOT_SECRET_NAME.search(n)


_SCHEMES = frozenset(("bearer", "basic", "token", "digest", "api-key", "key", "negotiate"))


def _number(value: str) -> bool:
    return bool(re.fullmatch(r"[\d.,:%]+", value))


MAX_NESTED_NAMES = 8   # `env: AWS_SECRET_ACCESS_KEY=…`: a secret's name inside another name's value


def _masked(value: str, kind: str, kinds: list[str]) -> str:
    """The shape of a value; its kind is added to `kinds` when it was a secret (a placeholder or an
    already masked value is not counted)."""
    out = shape(value)
    if out != value.strip().strip("'\""):
        kinds.append(kind)
    return out


def _replace(match: re.Match[str], group: int, name_group: int, kind: str, kinds: list[str], depth: int = 0) -> str:
    if name_group:
        value = match.group(group) or ""
        if not secret_name(match.group(name_group) or "") or _number(value) or value.lower() in _SCHEMES:
            # not a secret's name (or the scheme word of "Authorization: Bearer …", left for its own
            # entry); its value may still hold `NAME=secret`, which this match has consumed
            if depth < MAX_NESTED_NAMES and ("=" in value or ":" in value):
                whole, base = match.group(0), match.start(0)
                inner = match.re.sub(lambda m: _replace(m, group, name_group, kind, kinds, depth + 1), value)
                return whole[: match.start(group) - base] + inner + whole[match.end(group) - base:]
            return match.group(0)
    out = []
    for i in range(1, (match.re.groups or 0) + 1):
        part = match.group(i) or ""
        out.append(_masked(part, kind, kinds) if i == group else part)
    return "".join(out)


def _builtin(text: str) -> tuple[str, tuple[str, ...]]:
    """`text` with every entry of the catalogue masked, and the kinds masked, in order."""
    kinds: list[str] = []
    for pattern, group, name_group, kind in _PATTERNS:
        text = pattern.sub(lambda m, g=group, n=name_group, k=kind: _replace(m, g, n, k, kinds), text)
    return text, tuple(kinds)


class _Seen:
    """What masking a short string found, remembered: live traffic and logs repeat the same header
    values, paths and answers over and over. A memo of the pure `_builtin`, bounded: it starts
    afresh when full."""

    MAX = 4096                    # strings remembered
    CHARS = 1024                  # longer strings are not remembered

    def __init__(self) -> None:
        self.answers: dict[str, tuple[str, tuple[str, ...]]] = {}

    def __call__(self, text: str) -> tuple[str, tuple[str, ...]]:
        if len(text) > self.CHARS:
            return _builtin(text)
        hit = self.answers.get(text)
        if hit is None:
            hit = _builtin(text) if _PREFILTER_PY.search(text) else (text, ())   # the prefilter: a superset
            if len(self.answers) >= self.MAX:
                self.answers.clear()
            self.answers[text] = hit
        return hit


_SEEN = _Seen()
SEEN_CHARS = _Seen.CHARS


def mask_text(text: str) -> str:
    """Mask every secret of the catalogue in one string: what emblens's own front ends use for
    what they write (a bundle's files, a probe's exchanges). An analysis masks with its run's
    `Redactor`, which also applies the user's own patterns and counts what it masked."""
    return _SEEN(text)[0]


# a line that ends right after a secret's name (pretty-printed JSON or YAML): the value is on the next line
DANGLING = (r"(?i)(?:key|keys|token|secret|passw(?:or)?d|pwd|credentials?|signature|cookie|session_?id|auth|"
            r"authorization|jwt)[\"']?[ \t]*[:=][ \t]*\[?[ \t]*$")
_LAST_NAME = re.compile(_NAME + r"[\"']?[ \t]*+[:=][ \t]*+\[?[ \t]*+$")
_NEXT_VALUE = re.compile(r"^(\s*+[\"']?)(" + _VALUE + ")")
_PREFILTER_PY = re.compile(PREFILTER)


@dataclass(frozen=True)
class UserPattern:
    """One of the user's own patterns (`--redact FILE`): its first group is masked when it has
    one, else the whole match."""

    regex: re.Pattern[str]
    kind: str                     # what the report's "masked" line calls it: "your pattern (file:line)"


def read_patterns(path: str) -> tuple[UserPattern, ...]:
    """The user's patterns from a file: one regex per line (`#` starts a comment). Each must be a
    regex of the linear-time engine. Raises InputError naming the file and line."""
    from emblens.errors import InputError
    from emblens.patterns.linear import rust_ok

    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the redaction patterns: {e}") from None
    out = []
    for n, line in enumerate(lines, 1):
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        try:
            compiled = re.compile(pattern)
        except re.error as e:
            raise InputError(f"{path}:{n}: not a regex: {e}") from None
        if not rust_ok(pattern):
            raise InputError(f"{path}:{n}: look-around and back-references are not allowed in redaction patterns")
        out.append(UserPattern(compiled, f"your pattern ({path}:{n})"))
    return tuple(out)


def _user_replace(match: re.Match[str], kind: str, kinds: list[str]) -> str:
    target = match.group(1) if (match.re.groups or 0) >= 1 and match.group(1) is not None else match.group(0)
    if target.startswith("<"):
        return match.group(0)      # masked already (a column made from a masked line)
    if (match.re.groups or 0) >= 1 and match.group(1) is not None:
        start, end = match.span(1)
        whole = match.group(0)
        base = match.start(0)
        return whole[: start - base] + _masked(match.group(1), kind, kinds) + whole[end - base:]
    return _masked(match.group(0), kind, kinds)


class Redactor:
    """The masking of one run: the catalogue, the user's own patterns, and what was masked, by kind
    (the report says it, never the values). Methods mask a string, a row, a column or an event
    table; all of them count into this redactor only, so two runs never see each other's patterns
    or counts. Thread-safe: reading masks on its worker threads.

    >>> r = Redactor()
    >>> r.text("key sk-abcdefghijklmnopqrstuvwx"), r.take()
    ('key <sk-key: 27 chars>', {'sk- key': 1})
    """

    def __init__(self, patterns: tuple[UserPattern, ...] = ()) -> None:
        self.patterns = patterns
        self.prefilter = PREFILTER if not patterns else "|".join([PREFILTER, *(f"(?:{p.regex.pattern})" for p in patterns)])
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | None) -> Redactor:
        """A redactor with the user's patterns of `path` (`read_patterns`), or the catalogue only."""
        return cls(read_patterns(path) if path else ())

    def _count(self, kinds) -> None:
        if kinds:
            with self._lock:
                self._counts.update(kinds)

    def counts(self) -> dict[str, int]:
        """What was masked so far, by kind, most common first."""
        with self._lock:
            return dict(self._counts.most_common())

    def add(self, counts: dict[str, int]) -> None:
        """Count what was masked elsewhere for this run (the live addon's rows, masked in the proxy's
        process, counted in the process that runs its rules)."""
        with self._lock:
            self._counts.update(counts)

    def take(self) -> dict[str, int]:
        """The counts so far, most common first, and a fresh start."""
        with self._lock:
            out, self._counts = dict(self._counts.most_common()), Counter()
        return out

    def text(self, text: str) -> str:
        """Mask every secret in one string."""
        out, kinds = _SEEN(text)
        if self.patterns:
            more: list[str] = []
            for p in self.patterns:
                out = p.regex.sub(lambda m, k=p.kind: _user_replace(m, k, more), out)
            kinds = kinds + tuple(more)
        self._count(kinds)
        return out

    def next_lines(self, lines: pl.Series, numbers: pl.Series | None = None) -> pl.Series:
        """Mask the leading value of every line that follows a line ending in a secret's name.
        `numbers`: the lines' numbers, when they are some lines of a log and not all (a server log's
        lines less its `200 OK` access lines): a line follows the one before it only when their
        numbers do."""
        after = lines.str.contains(DANGLING).fill_null(False).shift(1, fill_value=False)
        if numbers is not None:
            after = after & (numbers.diff() == 1).fill_null(False)
        if not after.any():
            return lines
        idx = after.arg_true()
        names = [_LAST_NAME.search(t or "") for t in lines.gather(idx - 1).to_list()]
        kinds: list[str] = []
        masked = [t if t is None or n is None or not secret_name(n.group(1)) else
                  _NEXT_VALUE.sub(lambda m: m.group(0) if _number(m.group(2))
                                  else m.group(1) + _masked(m.group(2), "secret field", kinds), t, count=1)
                  for t, n in zip(lines.gather(idx).to_list(), names, strict=True)]
        self._count(kinds)
        return lines.scatter(idx, pl.Series(masked, dtype=pl.String))

    def series(self, lines: pl.Series) -> pl.Series:
        """Mask a column of lines; only the few lines the prefilter flags leave polars."""
        hits = lines.str.contains(self.prefilter).fill_null(False)
        if not hits.any():
            return lines
        idx = hits.arg_true()
        masked = pl.Series([None if t is None else self.text(t) for t in lines.gather(idx).to_list()], dtype=pl.String)
        return lines.scatter(idx, masked)

    def row(self, row: dict) -> dict:
        """`frame` for one event row as it is made (the live addon masks each flow once)."""
        for key, value in row.items():
            if isinstance(value, str):
                if len(value) <= SEEN_CHARS or self.patterns or _PREFILTER_PY.search(value):
                    value = self.text(value)
                row[key] = printable(value)
        return row

    def frame(self, events: pl.DataFrame) -> pl.DataFrame:
        """Mask secrets and neutralise control characters in every text column of an event table
        (any of them can hold text from the input): the last line of defence, whatever a format did."""
        cols = [c for c, dtype in events.schema.items() if dtype == pl.String]
        if not cols or events.height == 0:
            return events
        # one query tells which columns hold a secret's shape or a control character at all (in most,
        # none); only those are masked and made printable value by value
        flags = events.select(
            *(pl.col(c).str.contains(self.prefilter).any().alias(f"m{i}") for i, c in enumerate(cols)),
            *(pl.col(c).str.contains(CONTROL).any().alias(f"p{i}") for i, c in enumerate(cols)),
        ).row(0)
        n = len(cols)
        changed = []
        for i, c in enumerate(cols):
            if flags[i] or flags[n + i]:
                values = self.series(events[c]) if flags[i] else events[c]
                changed.append(printable_series(values).alias(c))
        return events.with_columns(changed) if changed else events


def masked_flow(flow, mask: Callable[[str], str] = mask_text):
    """A copy of a mitmproxy flow to save, with every credential masked: headers (Authorization,
    cookies, API-key headers), query keys and text bodies go through the same catalogue as the
    reports (`mask`: the catalogue, or a run's `Redactor.text`, which counts what it masks)."""
    f = flow.copy()
    for message in (f.request, f.response):
        if message is None:
            continue
        for name in list(message.headers.keys()):
            values = message.headers.get_all(name)
            message.headers.set_all(name, [mask(f"{name}: {v}").split(": ", 1)[-1] for v in values])
        if message.raw_content:
            text = message.get_text(strict=False)
            if text is not None:
                message.text = mask(text)
    query = f.request.query
    for key in list(query.keys()):
        if secret_name(key):
            query.set_all(key, [shape(v) for v in query.get_all(key)])
    return f


CONTROL = r"[\x00-\x08\x0b-\x1f\x7f-\x9f]"   # C0 but tab and newline, DEL, C1 (0x9b is a CSI too)
_CONTROL = re.compile(CONTROL)
_CONTROL_CHARS = tuple([chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))])
_CONTROL_SHOWN = tuple([f"\\x{ord(c):02x}" for c in _CONTROL_CHARS])


def printable(text: str) -> str:
    """Text with control characters (terminal escape sequences among them) shown as \\xNN
    instead of acted on; newlines and tabs are kept.

    >>> printable("title\\x1b]0;pwned\\x07 ok")
    'title\\\\x1b]0;pwned\\\\x07 ok'
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def printable_series(values: pl.Series) -> pl.Series:
    """`printable` for a column, at polars speed (one pass finds the rare rows that need it)."""
    hits = values.str.contains(CONTROL).fill_null(False)
    if not hits.any():
        return values
    idx = hits.arg_true()
    return values.scatter(idx, values.gather(idx).str.replace_many(_CONTROL_CHARS, _CONTROL_SHOWN))
