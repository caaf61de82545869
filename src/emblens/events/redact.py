"""Secret masking: the one place where tokens, keys and passwords are removed.

Applied to every line before it enters the event table, and once more to every column that can
hold user text when the table is built (`Redactor.frame`), so no report, export or log of emblens
can show a secret. The shape survives (`<empty>`, a known placeholder such as `EMPTY`, or
`<key: 32 chars>` / `<sk-key: 51 chars>`), because the shape is often the diagnosis.

A value is a secret, found by meaning rather than by a list of names:
- by what holds it: a key, flag, variable, header, query parameter or field whose name says secret
  (`secret_name`: key, token, secret, password, auth, credential, `ak`/`sk`, ... in any case and
  separator, numbered or plural, glued as in PGPASSWORD), with the value after `=`, `:`, a space
  or a quote, in a Rust Option (`Some("…")`), after a label (`X-Api-Key (from vault): …`), in a
  k8s `name:`/`value:` pair, a flag/value pair of a list (`"--api-key", "…"`), or on the lines
  after the name (`next_lines`: a pretty-printed value, a YAML block scalar, an INI continuation,
  a key split over two lines, a private-key block);
- by its own shape: `sk-…`, `hf_…`, JWTs, DSN passwords (`@` included), Baidu and Zhipu keys, a
  high-entropy token right after an auth word, and the vendor shapes of a maintained detector
  set (detect-secrets' regex plugins, `vendor_shapes`);
- by what it decodes to: a base64 blob that holds one of the above is masked whole;
- because it was seen: a value masked anywhere in a run is masked wherever else it appears in that
  run (`Redactor`), so an echo of the key in an error body, worded any way, is masked too.

Masking is a pure function of the text (`mask_text`), except for what a run adds: the user's own
patterns (`--redact FILE`), the values seen, and the tally of what was masked. Those live in the
run's `Redactor`, never in this module, so analyses in one process (threads, a fleet) cannot see
each other's.

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

import base64
import binascii
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from emblens.events.vendor_shapes import SHAPES as VENDOR_SHAPES
from emblens.patterns.ascii import contains

# Values that are not secrets: what people pass when the server has no --api-key.
PLACEHOLDERS = frozenset(
    v.lower()
    for v in (
        "EMPTY", "none", "null", "nil", "dummy", "fake", "placeholder", "sk-xxx", "sk-no-key-required",
        "token-abc123", "your-api-key", "your_api_key", "YOUR_API_KEY", "xxx", "***", "not-needed",
        "not-used", "na", "n/a", "test", "abc123", "sk-1234", "changeme", "true", "false",
        # the documented stand-ins: Ollama's OpenAI examples (`api_key="ollama"`), LM Studio's ("lm-studio"),
        # and what frameworks fill in when no key is given ("unused", "no-key", "sk-dummy")
        "unused", "ollama", "lm-studio", "lmstudio", "no-key", "nokey", "sk-dummy", "sk-fake",
    )
)

# -- names that say their value is a secret ------------------------------------------------------------
# the last word of a name (after camelCase, '-', '.' and ' ' become '_'; numbers and a plural 's' dropped)
SECRET_WORDS = frozenset((
    "key", "apikey", "token", "secret", "password", "passwd", "pwd", "pass", "passphrase", "credential", "cred",
    "signature", "sig", "cookie", "sessionid", "auth", "authorization", "bearer", "jwt", "privatekey", "accesskey",
    "secretkey", "subscriptionkey", "ak", "sk", "pat",
))
# ...or the end of it, glued to what comes before (PGPASSWORD, AUTHTOKEN, CLIENTSECRET)
SECRET_ENDINGS = ("password", "passwd", "passphrase", "secret", "token", "apikey", "accesskey", "secretkey", "privatekey",
                  "credential")
# ...but not these: counts, ids and vocabulary that only look like it
NOT_SECRET_NAME = re.compile(
    r"(?:^|_)(?:new_token|max_token|min_token|num_token|total_token|n_token|prompt_token|completion_token|input_token|"
    r"output_token|cached_token|reasoning_token|special_token|stop_token|eos_token|bos_token|pad_token|unk_token|"
    r"sep_token|cls_token|mask_token|sort_key|primary_key|foreign_key|cache_key|key_value|partition_key|"
    r"max_model_token|kv_cache_token|num_gpu_block|token_usage)$|"
    # a count of tokens, however it is spelt (`--max-batch-tokens`, `max_num_batched_tokens`)
    r"(?:^|_)(?:max|min|num|n|total|batch|prompt|completion|input|output)(?:_[a-z]+)*_token$"
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[\-. ]+")
_TRAILING_NUMBER = re.compile(r"(?:_?\d+)+$")


def secret_name(name: str) -> bool:
    """Whether a key, header, flag or variable name says its value is a secret.

    >>> [secret_name(n) for n in ("OPENAI_API_KEY", "apiKey", "X-API-Key", "max_tokens", "#new-token")]
    [True, True, True, False, False]
    >>> [secret_name(n) for n in ("QIANFAN_SK", "PGPASSWORD", "OPENAI_API_KEY_2", "API_SECRETS", "tokenizer", "monkey")]
    [True, True, True, True, False, False]
    """
    n = _SEPARATORS.sub("_", _CAMEL.sub("_", name.strip().lstrip("-#$@"))).lower().strip("_")
    n = _TRAILING_NUMBER.sub("", n)
    if not n or NOT_SECRET_NAME.search(n) or NOT_SECRET_NAME.search(n.removesuffix("s")):
        return False
    last = n.rsplit("_", 1)[-1]
    if last.endswith("s") and not last.endswith("ss") and len(last) > 3:
        last = last[:-1]
    return last in SECRET_WORDS or last.endswith(SECRET_ENDINGS)


def _number(value: str) -> bool:
    return bool(re.fullmatch(r"[\d.,:%]+", value))


_SCHEMES = frozenset(("bearer", "basic", "token", "digest", "api-key", "apikey", "key", "negotiate"))

# -- the catalogue ---------------------------------------------------------------------------------------
# a value: up to a space, a quote, a backtick or a closing bracket; a period only inside it (a sentence
# ends after `token=None.`)
# a value ends where a JSON string's escape begins (`\n`, `\"`): in an error body quoted on one line, the
# next field's name is not part of the secret before it
_VALUE = r"(?!<|Some\()(?:[^\s\"'`,;)\]}>.\\]|\\(?![nrt\"'\\/])|\.(?=[^\s\"'`,;)\]}>.]))++"
_NAME = r"(?<![A-Za-z0-9_.\-])([A-Za-z][A-Za-z0-9_.\-]*+)"


def _random(value: str) -> bool:
    """Whether a token looks generated: long, and of mixed letters and digits (not a word or a number)."""
    return (len(value) >= 16 and any(c.isdigit() for c in value) and any(c.islower() for c in value)
            and any(c.isupper() for c in value))


def _basic(value: str) -> bool:
    """Whether the word after `Basic` is a credential: base64 of `user:password`, or a generated
    token; not a word ("No Basic Authentication information found", Higress's 401)."""
    import base64
    import binascii

    if _random(value) or any(c.isdigit() or c in "+/=" for c in value):
        return True
    try:
        return b":" in base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return not value.isalpha() or not (value[1:].islower() or value.islower())


@dataclass(frozen=True)
class Entry:
    """One way a secret is recognised: a pattern, the group holding the secret, the group holding
    the name that must say secret (0: none), what the report's "masked" line calls it, and an
    optional test the value must pass."""

    pattern: re.Pattern[str]
    group: int
    name_group: int
    kind: str
    check: Callable[[str], bool] | None = None


def _e(pattern: str, group: int, name_group: int, kind: str, check=None, flags: int = 0) -> Entry:
    return Entry(re.compile(pattern, flags), group, name_group, kind, check)


# Order matters: an entry sees the text as the ones before it left it (their values already masked).
_PATTERNS: tuple[Entry, ...] = (
    # private-key blocks (a pasted .pem): everything between the markers on the line
    _e(r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)([^-]++)", 2, 0, "private key"),
    # an authorization scheme and its credential: Bearer wherever it stands, the others in an
    # Authorization header; the credential may be quoted
    _e(r"(?i)((?<![A-Za-z])bearer[ \t]++[\"']?)(" + _VALUE + ")", 2, 0, "bearer token"),
    _e(r"(?i)(authorization[\"']?[ \t]*+[:=][ \t]*+[\"']?(?:token|api-?key|key|digest)[ \t]++[\"']?)(" + _VALUE + ")", 2, 0,
       "authorization credential"),
    _e(r"(?i)((?<![A-Za-z])basic[ \t]++)([A-Za-z0-9+/=]{6,}+)", 2, 0, "basic credential", _basic),
    # cookies: every value of a Cookie or Set-Cookie header, to the end of the header
    _e(r"(?i)((?<![A-Za-z\-])(?:set-)?cookie[\"']?[ \t]*+[:=][ \t]*+[\"']?)([^\"'\n]++)", 2, 0, "cookie"),
    # a k8s env pair on one line: {name: X_API_KEY, value: …} / {"name": "X_API_KEY", "value": "…"}
    _e(r"(?i)([\"']?name[\"']?[ \t]*+[:=][ \t]*+[\"']?)([A-Za-z][\w.\-]*+)([\"']?[ \t]*+,[ \t]*+[\"']?value[\"']?[ \t]*+[:=]"
       r"[ \t]*+[\"']?)(" + _VALUE + ")", 4, 2, "secret field"),
    # a command-line flag named like a secret and its value: `--api-key v`, `--hf_token=v`, and in a
    # list of arguments `"--api-key", "v"`
    _e(r"(?<![\w\-])(--)([A-Za-z0-9][A-Za-z0-9_\-]*+)((?:[\"']?[ \t]*+,[ \t]*+|[ \t]++|=)[\"']?)(" + _VALUE + ")", 4, 2,
       "command-line secret"),
    # a Rust Option as its Debug prints it (text-embeddings-inference logs its arguments so):
    # `api_key: Some("…")`, and inside a JSON log line `api_key: Some(\"…\")`
    _e(_NAME + r"([ \t]*+[:=][ \t]*+Some\(\\?[\"'])([^\"'\\\n]++)", 3, 1, "secret field"),
    # name: value, name=value, "name": "value", ?name=value (query keys), NAME=value (environment),
    # a header after a label (`X-Api-Key (from vault): …`); a list after the name has every element
    # masked by the next entry (a value on the next line is `next_lines`' business)
    _e(_NAME + r"((?>\\?[\"']?\]?(?:[ \t]*+\([^()\n]{1,40}+\))?[ \t]*+[:=][ \t]*+\[?[ \t]*+\\?[\"']?))(" + _VALUE + ")", 3, 1,
       "secret field"),
    _e(r"(?i)((?:api_?key|token|secret|password)[\"']?[ \t]*+[:=][ \t]*+\[[^\]\n]*?,(?>[ \t]*+[\"']?))(" + _VALUE + ")", 2, 0,
       "secret field"),
    # a DSN's password: scheme://user:password@host, the password up to the last @ before the host
    # (it may hold /, : or @), also with the slashes escaped inside a JSON string
    _e(r"((?<![\w+.\-])[A-Za-z][\w+.\-]*+:(?:\\?/){2}[^/\s:@\\]*+:)(\S+)(@[^\s@/\\\"']++)", 2, 0, "DSN password"),
    # the OpenAI SDK's and servers' echo of a wrong key
    _e(r"(Incorrect API key provided: )(" + _VALUE + ")", 2, 0, "echoed API key"),
    # a generated-looking token right after an auth word: "the auth token Ab3…", "api key is Xy9…"
    _e(r"(?i)((?<![A-Za-z])(?:api[ _-]?key|access[ _-]?key|auth(?:entication|orization)?[ _-]?token|token|secret|password|"
       r"passwd|credential|bearer)s?[ \t]++(?:(?:is|was|of|for|=)[ \t]++)?)([A-Za-z0-9_\-+/=.]{16,}+)", 2, 0,
       "token after an auth word", _random),
    # shapes that are secrets anywhere
    _e(r"()((?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{12,}+)", 2, 0, "sk- key"),
    _e(r"()((?<![A-Za-z0-9])(?:hf|gsk|r8|xai)_[A-Za-z0-9]{20,}+)", 2, 0, "hf/groq/replicate/xai token"),
    _e(r"()((?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{30,}+|github_pat_[A-Za-z0-9_]{40,}+))", 2, 0, "GitHub token"),
    _e(r"()((?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9\-]{10,}+)", 2, 0, "Slack token"),
    _e(r"()((?<![A-Za-z0-9])(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}+)", 2, 0, "Stripe key"),
    _e(r"()((?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z]))", 2, 0, "AWS access key id"),
    _e(r"()((?<![A-Za-z0-9])AIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-]))", 2, 0, "Google API key"),
    _e(r"()((?<![A-Za-z0-9])ya29\.[0-9A-Za-z_\-]{20,}+)", 2, 0, "Google OAuth token"),
    _e(r"()((?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,}+\.eyJ[A-Za-z0-9_\-]{8,}+\.[A-Za-z0-9_\-]*+)", 2, 0, "JWT"),
    # Baidu Qianfan's bce-v3/ALTAK-…/… and Zhipu's <id>.<secret>
    _e(r"(bce-v3/)(ALTAK-[A-Za-z0-9]{10,}+/[A-Za-z0-9]{16,}+)", 2, 0, "Baidu access key"),
    _e(r"()((?<![A-Za-z0-9.])[0-9a-f]{32}\.[A-Za-z0-9]{16}(?![A-Za-z0-9]))", 2, 0, "Zhipu API key"),
)
# the vendor shapes of detect-secrets, each masked where it matches: its group when it has one,
# else the match without the delimiters some of its patterns include
_VENDOR: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, f), kind) for kind, p, f, _ in VENDOR_SHAPES)
# a base64 blob long enough to hold a key or a config
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/_\-])([A-Za-z0-9+/_\-]{40,}+={0,2})")
MAX_DECODED = 64 * 1024

# One linear-time pattern (the Rust engine) that finds every line any of the above could touch;
# only those lines go through the Python replacement, so big logs are masked at polars speed.
PREFILTER = "|".join([
    r"(?i:(?:key|keys|token|secret|passw(?:or)?d|pwd|pass|credentials?|signature|sig|cookie|session_?id|auth|"
    r"authorization|jwt|_ak|_sk|\bak|\bsk)s?(?:_?\d+)?[\"'\]]?(?:[ \t]*\([^()\n]{1,40}\))?[ \t]*[:=]|"
    r"(?:bearer|basic)[ \t]+[^\s]|--[a-z_-]*(?:key|token|secret|passw|pwd|auth))|"
    r"PRIVATE KEY|:(?:\\?/){2}[^/\s:@]*:[^\s@]+@|Incorrect API key|sk-[A-Za-z0-9_-]{12}|(?:hf|gsk|r8|xai)_[A-Za-z0-9]{20}|"
    r"gh[pousr]_|github_pat_|xox[abprs]-|_live_|_test_|AKIA|ASIA|AIza|ya29\.|eyJ|Some\(|bce-v3/|"
    r"[0-9a-f]{32}\.[A-Za-z0-9]{16}|[A-Za-z0-9+/_-]{40}|"
    r"(?i:api[ _-]?key|access[ _-]?key|token|secret|password|passwd|credential|bearer)s?[ \t]+[A-Za-z0-9_+/=.-]{16}|"
    r"(?i:name)[\"']?[ \t]*[:=][^,\n]*,[ \t]*[\"']?(?i:value)",
    *(hint for *_, hint in VENDOR_SHAPES),
])

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
    ("glued name", "PGPASSWORD=Gn4Lk7Jh2Gf5Ds8Aq1", "Gn4Lk7Jh2Gf5Ds8Aq1"),
    ("numbered name", "OPENAI_API_KEY_2=Nb4Lk7Jh2Gf5Ds8Aq1", "Nb4Lk7Jh2Gf5Ds8Aq1"),
    ("short ak/sk names", "QIANFAN_SK=Qs7Tz2Lm9Wq4Rt6Yp1Zx", "Qs7Tz2Lm9Wq4Rt6Yp1Zx"),
    ("flag with underscores", "serve --api_key Fu3Rw7Ty1Ui5Op9As", "Fu3Rw7Ty1Ui5Op9As"),
    ("flag in a list of arguments", 'args: ["--model", "m", "--api-key", "La8Gu2Mn5Ts7Xq4Wz"]', "La8Gu2Mn5Ts7Xq4Wz"),
    ("k8s env pair on one line", '{"name": "X_API_KEY", "value": "Ke3Vp6Ai9Ru2Lo5Nw"}', "Ke3Vp6Ai9Ru2Lo5Nw"),
    ("quoted bearer", 'Authorization: Bearer "Qb7Xz4Cv1Bn8Mq3Ws"', "Qb7Xz4Cv1Bn8Mq3Ws"),
    ("apikey scheme", "Authorization: ApiKey As9Lm2Nq5Wx8Ez4Rt", "As9Lm2Nq5Wx8Ez4Rt"),
    ("header after a label", "X-Api-Key (from vault): Hl6Qw3Er9Ty2Ui5Op", "Hl6Qw3Er9Ty2Ui5Op"),
    ("dsn password with @", "postgresql://app:Da@ss-W0rd-42q@db.internal:5432/app", "Da@ss-W0rd-42q"),
    ("dsn in a json string", '{"dsn": "postgresql:\\/\\/app:Dj4Pw7Qz1Xc8Vb@db:5432\\/x"}', "Dj4Pw7Qz1Xc8Vb"),
    ("baidu key", "ak='bce-v3/ALTAK-Bk7Kq2Lm9Wz4Xc1Vb/5f2e8a9c1d3b7e6f4a0c2d8e9b1f3a5c7d9e0b2f'",
     "ALTAK-Bk7Kq2Lm9Wz4Xc1Vb/5f2e8a9c1d3b7e6f4a0c2d8e9b1f3a5c7d9e0b2f"),
    ("zhipu key", "glm with 3f9c4e1a7b3d6e8f0a1c2b3d4e5f6a7b.Zk8Xq2Lm5Wk9Rt3Y", "3f9c4e1a7b3d6e8f0a1c2b3d4e5f6a7b.Zk8Xq2Lm5Wk9Rt3Y"),
    ("token after an auth word", "using the auth token Ta7Kq2Lm9Wz4Xc1Vb8Np now", "Ta7Kq2Lm9Wz4Xc1Vb8Np"),
    ("vendor shape (sendgrid)", "SG.Vs3Cd5Ef7Gh9Ij1Kl3Mn5O.Qr7St9Uv1Wx3Yz5Ab7Cd9Ef1Gh3Ij5Kl7Mn9Op1Qr3St5Uv",
     "SG.Vs3Cd5Ef7Gh9Ij1Kl3Mn5O.Qr7St9Uv1Wx3Yz5Ab7Cd9Ef1Gh3Ij5Kl7Mn9Op1Qr3St5Uv"),
    ("base64 config holding a key", "CONFIG=eyJhcGlfa2V5IjogIkI2NFprOVF3M0VyNlR5dUk4In0=", "eyJhcGlfa2V5IjogIkI2NFprOVF3M0VyNlR5dUk4In0"),
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


class Found:
    """What masking one text found: the kinds masked (for the tally) and the values (for the run's
    `seen`), in order."""

    __slots__ = ("kinds", "values")

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.values: list[str] = []

    def mask(self, value: str, kind: str) -> str:
        """The shape of a value; counted when it was a secret (a placeholder or an already masked
        value is not)."""
        out = shape(value)
        raw = value.strip().strip("'\"")
        if out != raw:
            self.kinds.append(kind)
            self.values.append(raw)
        return out


_BLOCK_INDICATORS = frozenset(("|", ">", "|-", ">-", "|+", ">+"))
MAX_NESTED_NAMES = 8   # `env: AWS_SECRET_ACCESS_KEY=…`: a secret's name inside another name's value


def _replace(match: re.Match[str], entry: Entry, found: Found, depth: int = 0) -> str:
    group, name_group = entry.group, entry.name_group
    value = match.group(group) or ""
    if name_group:
        if value in _BLOCK_INDICATORS:
            return match.group(0)      # a YAML block scalar: its value is on the lines after (`next_lines`)
        if not secret_name(match.group(name_group) or "") or _number(value) or value.lower() in _SCHEMES:
            # not a secret's name (or the scheme word of "Authorization: Bearer …", left for its own
            # entry); its value may still hold `NAME=secret`, which this match has consumed
            if depth < MAX_NESTED_NAMES and ("=" in value or ":" in value):
                whole, base = match.group(0), match.start(0)
                inner = match.re.sub(lambda m: _replace(m, entry, found, depth + 1), value)
                return whole[: match.start(group) - base] + inner + whole[match.end(group) - base:]
            return match.group(0)
    if entry.check is not None and not entry.check(value):
        return match.group(0)
    whole, base = match.group(0), match.start(0)
    return whole[: match.start(group) - base] + found.mask(value, entry.kind) + whole[match.end(group) - base:]


_DELIMITERS = " \t=:\"'"


def _vendor(text: str, found: Found) -> str:
    """The vendor shapes of detect-secrets, masked where they match."""
    for pattern, kind in _VENDOR:
        if pattern.search(text) is None:
            continue

        def one(m: re.Match[str], kind: str = kind) -> str:
            if m.re.groups and m.group(1):
                start, end = m.span(1)
            else:
                start, end = m.span()
                while start < end and m.string[start] in _DELIMITERS:
                    start += 1
                while end > start and m.string[end - 1] in _DELIMITERS:
                    end -= 1
            whole, base = m.group(0), m.start()
            secret = m.string[start:end]
            if secret.startswith("<"):
                return whole
            return whole[: start - base] + found.mask(secret, kind) + whole[end - base:]

        text = pattern.sub(one, text)
    return text


def _decoded(blob: str) -> str | None:
    """A base64 blob (standard or URL-safe) as text, when it decodes to text; else None."""
    s = blob.rstrip("=")
    try:
        raw = base64.b64decode(s + "=" * (-len(s) % 4), altchars=b"-_" if ("-" in s or "_" in s) else None, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw or len(raw) > MAX_DECODED:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    return text if printable >= 0.95 * len(text) else None


def _base64(text: str, found: Found, depth: int) -> str:
    """Base64 blobs that decode to text holding a secret, masked whole."""
    if depth >= 2:
        return text

    def one(m: re.Match[str]) -> str:
        decoded = _decoded(m.group(1))
        if decoded is None:
            return m.group(0)
        inner = Found()
        _builtin_into(decoded, inner, depth + 1)
        if not inner.kinds:
            return m.group(0)
        found.values.extend(inner.values)
        return found.mask(m.group(1), "base64 holding a secret")

    return _BASE64.sub(one, text)


def _builtin_into(text: str, found: Found, depth: int = 0) -> str:
    # the values on the lines after their names first (as reading does: `Redactor.next_lines` runs on
    # a member's lines before each line is masked), then each line's own
    if "\n" in text:
        text = "\n".join(_next_lines(text.split("\n"), found))
    for entry in _PATTERNS:
        text = entry.pattern.sub(lambda m, e=entry: _replace(m, e, found), text)
    text = _vendor(text, found)
    return _base64(text, found, depth)


def _builtin(text: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """`text` with every entry of the catalogue masked, and the kinds and values masked, in order."""
    found = Found()
    out = _builtin_into(text, found)
    return out, tuple(found.kinds), tuple(found.values)


class _Seen:
    """What masking a short string found, remembered: live traffic and logs repeat the same header
    values, paths and answers over and over. A memo of the pure `_builtin`, bounded: it starts
    afresh when full."""

    MAX = 4096                    # strings remembered
    CHARS = 1024                  # longer strings are not remembered

    def __init__(self) -> None:
        self.answers: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {}

    def __call__(self, text: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        if len(text) > self.CHARS:
            return _builtin(text)
        hit = self.answers.get(text)
        if hit is None:
            # the prefilter: a superset (with, in a text of several lines, the names that end a line)
            candidate = _PREFILTER_PY.search(text) or ("\n" in text and _TRIGGERS_M.search(text))
            hit = _builtin(text) if candidate else (text, (), ())
            if len(self.answers) >= self.MAX:
                self.answers.clear()
            self.answers[text] = hit
        return hit


_PREFILTER_PY = re.compile(PREFILTER)
MASKED = r"<(?:sk-key|hf-token|key): \d+ chars>"     # what `shape` leaves in place of a value
_SEEN = _Seen()
SEEN_CHARS = _Seen.CHARS


def mask_text(text: str) -> str:
    """Mask every secret of the catalogue in one string: what emblens's own front ends use for
    what they write when no run is at hand. An analysis masks with its run's `Redactor`, which
    also applies the user's own patterns, masks the values it has seen and counts what it masked."""
    return _SEEN(text)[0]


# -- values on the lines after their name ----------------------------------------------------------------
# What a line can end with when the secret's value is on the next line(s): each is a trigger, found in
# one query over a column of lines; whether its name says secret is decided in Python, for the few.
# a name with a secret's word in it, for the query (a superset: `secret_name` decides, in Python); the
# words are literals, which polars' engine finds first, so the query costs little on a big log
_N = (r"(?i:[\w.\-]*(?:key|token|secret|passw(?:or)?d|pwd|pass|phrase|cred\w*|auth\w*|sig\w*|cookie|session\w*|jwt|"
      r"bearer|ak|sk|pat)s?(?:_?\d+)?)[\"']?")
KEY_BLOCK = r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[ \t]*$"  # the block's lines, up to END, masked whole
# a name and its separator: pretty-printed JSON or YAML, an INI continuation, a YAML block scalar
# `api_key: |`, a list opened `api_key: [`, a Rust Option opened `api_key: Some("`
DANGLING = _N + r"(?:[ \t]*\([^()\n]{1,40}\))?[ \t]*[:=][ \t]*(?:\[|[|>][-+]?|Some\(\\?[\"']?)?[ \t]*$"
# a list after a name, continued on the next line: `'api_key': ['one',`
LIST = _N + r"[ \t]*[:=][ \t]*\[[^\]\n]*,[ \t]*$"
# an assignment whose quote is left open on a value with no space (a key: the query then reads only a
# line's last word), or whose line is continued: the key goes on
SPLIT = _N + r"[ \t]*[:=][ \t]*[\"'][^\"'\s]{0,256}$|" + _N + r"[ \t]*=[^\s\"']*\\$"
# a flag alone at the end of a line (kubectl describe's Args, docker inspect's JSON list), or with `=`
DANGLING_FLAG = r"--(?i:[\w\-]*(?:key|token|secret|passw|pwd|auth|cred|phrase)[\w\-]*)(?:=|[\"']?,?)[ \t]*$"
# a k8s env entry's name line, or its name and an opened value: `- name: X_API_KEY`, `"name": "X", "value":`
NAME_LINE = r"(?i)^\W*name[\"']?[ \t]*:[ \t]*[\"']?[A-Za-z][\w.\-]*[\"']?,?[ \t]*$|" \
            r"(?i)name[\"']?[ \t]*[:=][ \t]*[\"']?[A-Za-z][\w.\-]*[\"']?[ \t]*,[ \t]*[\"']?value[\"']?[ \t]*[:=][ \t]*[\"']?[ \t]*$"
# an authorization scheme, a cookie's name, a DSN's user, the SDK's echo: the credential is next
SCHEME = (r"(?i)(?:authorization[\"']?[ \t]*[:=][ \t]*[\"']?[\w-]*|\bbearer|\bbasic)[ \t]*$|"
          r"(?i)cookie[\"']?[ \t]*[:=][^\n]*=[ \t]*$|(?:\\?/){2}[^/\s:@]*:[ \t]*$|Incorrect API key provided:[ \t]*$")
# an auth word at the end of a sentence: the token after it, when it looks generated
AUTH_WORD = r"(?i)(?:api[ _-]?key|access[ _-]?key|token|secret|password|passwd|credential|bearer)s?[ \t]*$"
_ALL = (KEY_BLOCK, DANGLING, LIST, SPLIT, DANGLING_FLAG, NAME_LINE, SCHEME, AUTH_WORD)
TRIGGERS = "|".join(("(?i:" + p[4:] + ")") if p.startswith("(?i)") else f"(?:{p})"
                    for part in _ALL for p in part.split("|(?i)") if p)
_TRIGGERS = re.compile(TRIGGERS)
_TRIGGERS_M = re.compile(TRIGGERS, re.M)
_KEY_BLOCK = re.compile(KEY_BLOCK)
_SCHEME = re.compile(SCHEME.replace("|(?i)", "|"))
_AUTH_WORD = re.compile(AUTH_WORD)
_LAST_NAME = re.compile(_NAME + r"[\"']?(?:[ \t]*+\([^()\n]{1,40}+\))?[ \t]*+[:=][ \t]*+(?:\[|[|>][-+]?|Some\(\\?[\"']?)?[ \t]*+$")
_LIST_NAME = re.compile(_NAME + r"[\"']?[ \t]*+[:=][ \t]*+\[[^\]\n]*,[ \t]*+$")
_SPLIT_NAME = re.compile(_NAME + r"[\"']?[ \t]*+(?:[:=][ \t]*+[\"'][^\"'\s]*|=[^\s\"']*\\)$")
_FLAG_NAME = re.compile(r"--([A-Za-z0-9_\-]+)(?:=|[\"']?,?)[ \t]*$")
_ENTRY_NAME = re.compile(r"(?i)name[\"']?[ \t]*[:=][ \t]*[\"']?([A-Za-z][\w.\-]*)[\"']?[ \t]*(,[ \t]*[\"']?value[\"']?[ \t]*[:=][ \t]*[\"']?)?,?[ \t]*$")
_NEXT_VALUE = re.compile(r"^(\s*+[\"']?)(" + _VALUE + ")")
_VALUE_LINE = re.compile(r"(?i)^(\s*+[\"']?value[\"']?[ \t]*+:[ \t]*+[\"']?)(" + _VALUE + ")")
_TOKEN_LINE = re.compile(r"^(\s*+[\"']?)([^\s\"',]++)([\"']?,?\s*)$")
_ASSIGNMENT = re.compile(r"^\s*[\"']?[A-Za-z][\w.\-]*[\"']?[ \t]*[:=]")
_KEY_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
MAX_FOLLOWING = 400          # lines of a block (a key, a block scalar, an INI value) masked at most
_BOUNDARY = re.compile(r"[\s\]\)>|]")


def _common(a: str, b: str) -> int:
    """Where the line `b` starts its own text: after the prefix it shares with `a` (a logger's
    `(APIServer pid=1) ERROR 11-20 09:14:03 [cfg.py:11] `, or indentation), cut back to a boundary."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    while n > 0 and not _BOUNDARY.match(b[n - 1]):
        n -= 1
    return n


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" \t-"))


def _mask_value(line: str, at: int, found: Found, kind: str = "secret field", pattern: re.Pattern[str] = _NEXT_VALUE) -> str:
    """`line` with the value that starts at `at` (after its quote, if any) masked."""
    rest = line[at:]
    m = pattern.match(rest)
    if m is None or _number(m.group(2)):
        return line
    return line[:at] + rest[: m.start(2)] + found.mask(m.group(2), kind) + rest[m.end(2):]


def _next_lines(lines: list[str], found: Found, numbers: list[int] | None = None,
                triggers: list[int] | None = None) -> list[str]:
    """Mask the values that stand on the lines after their name. `triggers`: the indexes of the
    lines that may start one (all lines are looked at when not given); `numbers`: the lines'
    numbers, when they are some lines of a log and not all (a line follows the one before it only
    when their numbers do)."""
    out = list(lines)
    todo = triggers if triggers is not None else [i for i, t in enumerate(lines) if t and _TRIGGERS.search(t)]

    def follows(j: int, i: int) -> bool:
        return j < len(out) and out[j] is not None and (numbers is None or numbers[j] - numbers[i] == j - i)

    for i in todo:
        head = out[i]
        if head is None or not follows(i + 1, i):
            continue
        if _KEY_BLOCK.search(head):
            _key_block(out, i, found, follows)
            continue
        nxt = out[i + 1]
        at = _common(head, nxt)
        if (m := _ENTRY_NAME.search(head)) and secret_name(m.group(1)):
            # `- name: X_API_KEY` then `value: …`; or `"name": "X_API_KEY", "value":` then the value
            out[i + 1] = _mask_value(nxt, at, found, pattern=_NEXT_VALUE if m.group(2) else _VALUE_LINE)
        elif (m := _FLAG_NAME.search(head)) and secret_name(m.group(1)):
            out[i + 1] = _mask_value(nxt, at, found, "command-line secret")
        elif _SCHEME.search(head):
            out[i + 1] = _mask_value(nxt, at, found, "authorization credential")
        elif ((m := _SPLIT_NAME.search(head)) or (m := _LIST_NAME.search(head))) and secret_name(m.group(1)):
            out[i + 1] = _mask_value(nxt, at, found)
        elif (m := _LAST_NAME.search(head)) and secret_name(m.group(1)):
            _dangling(out, i, at, found, follows)
        elif _AUTH_WORD.search(head):
            rest = _NEXT_VALUE.match(nxt[at:])
            if rest and _random(rest.group(2)):
                out[i + 1] = _mask_value(nxt, at, found, "token after an auth word")
    return out


def _key_block(out: list[str], i: int, found: Found, follows) -> None:
    """The lines of a private-key block after its BEGIN line, up to its END line, masked whole."""
    head = out[i]
    for j in range(i + 1, min(len(out), i + 1 + MAX_FOLLOWING)):
        if not follows(j, i):
            break
        at = _common(head, out[j])
        if _KEY_END.search(out[j], at):
            break
        body = out[j][at:]
        if body.strip():
            out[j] = out[j][:at] + found.mask(body.strip(), "private key")


def _dangling(out: list[str], i: int, at: int, found: Found, follows) -> None:
    """A secret's name that ends its line: the value on the next line, or, for a YAML block scalar
    (`|`, `>`) or an INI continuation, on the following lines more indented than the name."""
    head = out[i]
    own = _indent(head[at:])
    block = head.rstrip().endswith(tuple(_BLOCK_INDICATORS))
    for j in range(i + 1, min(len(out), i + 1 + MAX_FOLLOWING)):
        if not follows(j, i):
            break
        line = out[j]
        at_j = _common(head, line)
        rest = line[at_j:]
        if j > i + 1 and (not rest.strip() or _indent(rest) <= own or (not block and not _TOKEN_LINE.match(rest))):
            break        # the value ended: a line as indented as the name, or (INI) one that is not a value
        if j == i + 1 and _indent(rest) <= own and _ASSIGNMENT.match(rest):
            break        # no value: the next line is the next name
        if block:
            if rest.strip():
                out[j] = line[:at_j] + rest[: _indent(rest)] + found.mask(rest.strip(), "secret field")
        else:
            out[j] = _mask_value(line, at_j, found)
        if j == i + 1 and not block and _indent(rest) <= own:
            break        # a value on the next line, not more indented: that one line only


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


def _user_replace(match: re.Match[str], kind: str, found: Found) -> str:
    target = match.group(1) if (match.re.groups or 0) >= 1 and match.group(1) is not None else match.group(0)
    if target.startswith("<"):
        return match.group(0)      # masked already (a column made from a masked line)
    if (match.re.groups or 0) >= 1 and match.group(1) is not None:
        start, end = match.span(1)
        whole = match.group(0)
        base = match.start(0)
        return whole[: start - base] + found.mask(match.group(1), kind) + whole[end - base:]
    return found.mask(match.group(0), kind)


MIN_SEEN = 8          # a value this long or longer, once masked, is masked wherever else it appears in the run
MAX_SEEN = 10_000     # values remembered in one run


_FILE_REF = re.compile(r"^[\w.\-/]+\.[A-Za-z]{1,5}(?::\d+)*$|://")


def _rememberable(value: str) -> bool:
    """Whether a masked value is worth masking wherever else it appears: long enough, of more than
    one kind of character, one word, and not a file reference or a URL (`runner.py:182` after a
    name that says key is still masked there, not everywhere)."""
    if len(value) < MIN_SEEN or value.lower() in PLACEHOLDERS or any(c.isspace() for c in value) or _FILE_REF.search(value):
        return False
    kinds = sum((any(c.islower() for c in value), any(c.isupper() for c in value), any(c.isdigit() for c in value)))
    return kinds >= 2


class Redactor:
    """The masking of one run: the catalogue, the user's own patterns, the values it has masked so
    far (`seen`: masked wherever else they appear, an echo of a key in an error body included), and
    what was masked, by kind (the report says it, never the values). Methods mask a string, lines,
    a row, a column or an event table; all of them count into this redactor only, so two runs
    never see each other's patterns, values or counts. Thread-safe: reading masks on its worker
    threads.

    >>> r = Redactor()
    >>> r.text("key sk-abcdefghijklmnopqrstuvwx"), r.take()
    ('key <sk-key: 27 chars>', {'sk- key': 1})
    >>> r.text("the gateway answered: token 'Gw7kQ2xLm9Wz4Pa1' unknown")
    "the gateway answered: token 'Gw7kQ2xLm9Wz4Pa1' unknown"
    >>> _ = r.text("Authorization: Bearer Gw7kQ2xLm9Wz4Pa1")
    >>> r.text("the gateway answered: token 'Gw7kQ2xLm9Wz4Pa1' unknown")
    "the gateway answered: token '<key: 16 chars>' unknown"
    """

    def __init__(self, patterns: tuple[UserPattern, ...] = ()) -> None:
        self.patterns = patterns
        self.prefilter = PREFILTER if not patterns else "|".join([PREFILTER, *(f"(?:{p.regex.pattern})" for p in patterns)])
        self._counts: Counter[str] = Counter()
        self._seen: dict[str, str] = {}          # value -> its shape
        self._seen_rx: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | None) -> Redactor:
        """A redactor with the user's patterns of `path` (`read_patterns`), or the catalogue only."""
        return cls(read_patterns(path) if path else ())

    # -- the tally and the values seen ----------------------------------------------------------------
    def _note(self, found: Found) -> None:
        if not found.kinds and not found.values:
            return
        with self._lock:
            self._counts.update(found.kinds)
            new = [v for v in found.values if v not in self._seen and _rememberable(v)]
            if new and len(self._seen) < MAX_SEEN:
                for v in new:
                    self._seen[v] = shape(v)
                self._seen_rx = re.compile("|".join(re.escape(v) for v in sorted(self._seen, key=len, reverse=True)))

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

    def remember(self, value: str, kind: str = "secret field") -> str:
        """A secret known by other means (the key a request sent, reduced to its shape; the key a
        probe was given): masked wherever it appears from now on. Its shape."""
        found = Found()
        out = found.mask(value, kind)
        found.kinds.clear()            # remembered, not yet masked anywhere
        self._note(found)
        return out

    def _unseen(self, text: str) -> str:
        rx = self._seen_rx
        if rx is None or not text:
            return text
        return rx.sub(lambda m: self._seen[m.group(0)], text)

    # -- masking ----------------------------------------------------------------------------------------
    def text(self, text: str) -> str:
        """Mask every secret in one string (of one line or many)."""
        out, kinds, values = _SEEN(text)
        found = Found()
        found.kinds, found.values = list(kinds), list(values)
        for p in self.patterns:
            out = p.regex.sub(lambda m, k=p.kind: _user_replace(m, k, found), out)
        self._note(found)
        return self._unseen(out)

    def next_lines(self, lines: pl.Series, numbers: pl.Series | None = None) -> pl.Series:
        """Mask the values that stand on the lines after their name (`_next_lines`): the lines that
        may start one are found in one query, and only they and the lines after them are read in
        Python. `numbers`: the lines' numbers, when they are some lines of a log and not all (a
        server log's lines less its `200 OK` access lines)."""
        hits = contains(lines, TRIGGERS)
        if not hits.any():
            return lines
        idx = hits.arg_true().to_list()
        window = sorted({j for i in idx for j in range(i, min(len(lines), i + 1 + MAX_FOLLOWING))})
        values = lines.gather(window).to_list()
        nums = numbers.gather(window).to_list() if numbers is not None else window
        where = {j: k for k, j in enumerate(window)}
        found = Found()
        masked = _next_lines(values, found, nums, [where[i] for i in idx])
        self._note(found)
        changed = [(window[k], v) for k, v in enumerate(masked) if v is not values[k]]
        if not changed:
            return lines
        return lines.scatter([j for j, _ in changed], pl.Series([v for _, v in changed], dtype=pl.String))

    def series(self, lines: pl.Series, idx: pl.Series | None = None) -> pl.Series:
        """Mask a column of lines; only the few lines the prefilter flags leave polars (`idx`:
        their positions, when the caller has run the prefilter)."""
        if idx is None:
            idx = contains(lines, self.prefilter).arg_true()
        if len(idx):
            picked = lines.gather(idx)
            # a line only the user's patterns flag holds no shape of the catalogue: their substitution
            # alone masks it (the whole catalogue on every line of a log a pattern matches throughout
            # cost 100 us a value: 4 s for a 40,000-line log)
            # and a line masked already, whose only shape is a mask's own `<key: 15 chars>`, is not read again
            catalogue = contains(picked.str.replace_all(MASKED, ""), PREFILTER).fill_null(True).to_list()
            masked = pl.Series([None if t is None else self.text(t) if catalogue[k] else self._mine(t)
                                for k, t in enumerate(picked.to_list())], dtype=pl.String)
            lines = lines.scatter(idx, masked)
        return self._unseen_series(lines)

    def _mine(self, text: str) -> str:
        """`text` with the user's own patterns masked (for a line the catalogue's prefilter passes over)."""
        found = Found()
        for p in self.patterns:
            text = p.regex.sub(lambda m, k=p.kind: _user_replace(m, k, found), text)
        self._note(found)
        return text

    def _unseen_series(self, values: pl.Series) -> pl.Series:
        """The values seen, masked wherever they stand in a column (one Aho-Corasick pass)."""
        with self._lock:
            seen = dict(self._seen)
        if not seen:
            return values
        hits = values.str.contains_any(list(seen)).fill_null(False)
        if not hits.any():
            return values
        idx = hits.arg_true()
        return values.scatter(idx, values.gather(idx).str.replace_many(list(seen), list(seen.values())))

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
        (any of them can hold text from the input): the last line of defence, whatever a format did.
        The values seen anywhere in the run are masked in every column too."""
        cols = [c for c, dtype in events.schema.items() if dtype == pl.String]
        if not cols or events.height == 0:
            return events
        with self._lock:
            seen = list(self._seen)
        # one query tells which columns hold a value seen or a control character at all (in most,
        # none), and one pass over all the columns' values, stacked, which hold a secret's shape;
        # only those columns are masked and made printable value by value
        flags = events.select(
            *(pl.col(c).str.contains(CONTROL).any().alias(f"p{i}") for i, c in enumerate(cols)),
            *((pl.col(c).str.contains_any(seen).any().alias(f"s{i}") for i, c in enumerate(cols)) if seen else ()),
        ).row(0)
        n = len(cols)
        stacked = pl.concat([events[c] for c in cols], rechunk=False)
        at = contains(stacked, self.prefilter).arg_true()
        rows = {i: at.filter(at // events.height == i) % events.height for i in (at // events.height).unique().to_list()}
        flags = (*(i in rows for i in range(n)), *flags)
        changed = []
        for i, c in enumerate(cols):
            seen_here = bool(seen) and flags[2 * n + i]
            if flags[i] or flags[n + i] or seen_here:
                values = events[c]
                if flags[i]:
                    values = self.series(values, rows[i])
                elif seen_here:
                    values = self._unseen_series(values)
                changed.append(printable_series(values).alias(c))
        events = events.with_columns(changed) if changed else events
        # a value first seen in a later column or row: once more over the columns that hold one
        with self._lock:
            later = [v for v in self._seen if v not in set(seen)]
        if later:
            hit = events.select(*(pl.col(c).str.contains_any(later).any().alias(c) for c in cols)).row(0, named=True)
            events = events.with_columns(self._unseen_series(events[c]) for c in cols if hit[c])
        return events


def masked_flow(flow, mask: Callable[[str], str] = mask_text):
    """A copy of a mitmproxy flow to save, with every credential masked wherever a flow holds text:
    header and trailer values, the path and query, text bodies (multipart forms included), WebSocket
    messages (text, and binary read as text) and error messages, through the same catalogue as the
    reports (`mask`: the catalogue, or a run's `Redactor.text`, which counts what it masks).

    The values of credential headers (any scheme, quoted or not; a key sent as a
    `Sec-WebSocket-Protocol`), of secret-named query keys and of secret-named form fields are masked
    whole and remembered, with their base64: a server that echoes the key in its answer has the
    echo masked too, and, with a run's redactor, so do the flows after it."""
    from mitmproxy.net.http.headers import infer_content_encoding

    owner = getattr(mask, "__self__", None)
    redactor = owner if isinstance(owner, Redactor) else Redactor()
    if mask is mask_text:
        text = redactor.text
    elif isinstance(owner, Redactor):
        text = mask
    else:
        def text(s: str) -> str:
            return redactor.text(mask(s))
    known: dict[str, str] = {}           # this flow's credentials, and their base64, -> their shape
    known_rx: re.Pattern[str] | None = None
    # a multipart part: its headers (naming the field), the blank line, then the value up to the boundary
    field = re.compile(r'(Content-Disposition:[^\r\n]*?\bname="([^"\r\n]*)"[^\r\n]*(?:\r?\n[^\r\n]+)*\r?\n\r?\n)'
                       r"(.*?)(?=\r?\n--)", re.IGNORECASE | re.DOTALL)

    def keep(value: str) -> str:
        """A credential: its shape, and masked wherever else this flow holds it."""
        nonlocal known_rx
        v = value.strip().strip("'\"")
        out = shape(v)
        if out == v or len(v) < 6:       # empty, a placeholder, masked already, or too short to look for
            return out
        redactor.remember(v)
        raw = v.encode("utf-8", "surrogateescape")
        for form in (v, base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("=")):
            known.setdefault(form, shape(form))
        known_rx = re.compile("|".join(re.escape(k) for k in sorted(known, key=len, reverse=True)))
        return out

    def scrub(s: str) -> str:
        s = text(s)
        return known_rx.sub(lambda m: known[m.group(0)], s) if known_rx is not None and s else s

    def credential(name: str, value: str) -> str:
        low = name.lower()
        if low.endswith("authorization"):
            scheme, _, cred = value.strip().partition(" ")
            if not cred.strip():             # `Bearer` with nothing after it is a finding, not a secret
                return value if scheme.lower() in _SCHEMES else keep(value)
            if scheme.lower() == "basic":
                decoded = _decoded(cred.strip().strip("'\""))
                if decoded and ":" in decoded:
                    keep(decoded.split(":", 1)[1])
            return f"{scheme} {keep(cred)}"
        if low in ("cookie", "set-cookie"):
            pairs = value.split(";")
            for i, pair in enumerate(pairs if low == "cookie" else pairs[:1]):
                key, eq, val = pair.partition("=")
                pairs[i] = f"{key}={keep(val)}" if eq else keep(pair)
            return ";".join(pairs)
        if low == "sec-websocket-protocol":
            # a browser cannot set headers on a WebSocket, so keys travel as subprotocols:
            # `openai-insecure-api-key.<key>`, `base64url.bearer.authorization.k8s.io.<token>`
            tokens = []
            for token in value.split(","):
                labels = token.strip().split(".")
                at = next((i for i, label in enumerate(labels[:-1]) if secret_name(label) or label.lower() == "bearer"), None)
                if at is not None:
                    rest = ".".join(labels[at + 1:])
                    token = token.replace(rest, keep(rest), 1)
                tokens.append(token)
            return ",".join(tokens)
        return value if _number(value.strip()) else keep(value)   # x-ratelimit-remaining-tokens: 9000

    def headers(h) -> None:
        for name in list(h.keys()):
            values = h.get_all(name)
            if secret_name(name) or name.lower() == "sec-websocket-protocol":
                values = [credential(name, v) for v in values]
            prefix = f"{name}: "
            out = []
            for v in values:
                m = scrub(prefix + v)
                out.append(m[len(prefix):] if m.startswith(prefix) else m.split(": ", 1)[-1])
            if out != h.get_all(name):
                h.set_all(name, out)

    def body(message) -> None:
        if not message.raw_content:
            return
        try:
            content, decoded = message.get_content(strict=True), True
        except ValueError:                   # a content-encoding that does not decode: the bytes as sent
            content, decoded = message.raw_content, False
        kind = message.headers.get("content-type", "")
        enc = infer_content_encoding(kind, content)
        try:
            s = content.decode(enc, "surrogateescape")
        except (LookupError, UnicodeError):
            enc, s = "latin-1", content.decode("latin-1")
        out = s
        if "multipart/form-data" in kind.lower():
            out = field.sub(lambda m: m.group(1) + (keep(m.group(3)) if secret_name(m.group(2)) else m.group(3)), out)
        out = scrub(out)
        if out == s:
            return
        try:
            data = out.encode(enc, "surrogateescape")
        except UnicodeError:
            data = out.encode("utf-8", "surrogateescape")
        if decoded:
            message.content = data
        else:
            message.raw_content = data

    f = flow.copy()
    messages = [m for m in (f.request, f.response) if m is not None]
    # the headers of both sides first: the credentials they carry are known before any body is read
    for message in messages:
        headers(message.headers)
        if message.trailers is not None:
            headers(message.trailers)
    if f.request is not None:
        query = f.request.query
        for key in list(query.keys()):
            values = query.get_all(key)
            out = [keep(v) if secret_name(key) else scrub(v) for v in values]
            if out != values:
                query.set_all(key, out)
        path, sep, rest = f.request.path.partition("?")
        if scrub(path) != path:
            f.request.path = scrub(path) + sep + rest
    for message in messages:
        body(message)
    if f.websocket is not None:
        for m in f.websocket.messages:
            # text is UTF-8; a binary message is read byte for byte (latin-1): the keys in it are ASCII
            # and are found, and every other byte comes back as it was
            enc = "utf-8" if m.is_text else "latin-1"
            s = m.content.decode(enc, "surrogateescape")
            out = scrub(s)
            if out != s:
                m.content = out.encode(enc, "surrogateescape")
        if f.websocket.close_reason:
            f.websocket.close_reason = scrub(f.websocket.close_reason)
    if f.error is not None and f.error.msg:
        f.error.msg = scrub(f.error.msg)
    return f


# Characters that act rather than show: C0 but tab and newline, DEL, C1 (0x9b is a CSI too); and
# those that print as nothing or reorder what follows, so that two names that differ print the
# same or a line reads other than it is: soft hyphen, Arabic letter mark, Mongolian vowel separator,
# zero-width space, ZWNJ, ZWJ, LRM/RLM, line and paragraph separators, the bidi embeddings,
# overrides and isolates, word joiner and invisible operators, the BOM inside text (a file's
# leading one is dropped when it is decoded), and the tag characters (invisible ASCII).
CONTROL = (r"[\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069"
           r"\ufeff\U000e0000-\U000e007f]")
_CONTROL = re.compile(CONTROL)
_CONTROL_CHARS = tuple([chr(c) for c in (
    *range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), 0xAD, 0x061C, 0x180E, *range(0x200B, 0x2010),
    *range(0x2028, 0x202F), *range(0x2060, 0x2065), *range(0x2066, 0x206A), 0xFEFF, *range(0xE0000, 0xE0080))])
_CONTROL_SHOWN = tuple([f"\\x{ord(c):02x}" if c < "\xa0" else f"\\u{ord(c):04x}" if c <= "\uffff" else f"\\U{ord(c):08x}"
                        for c in _CONTROL_CHARS])


def printable(text: str) -> str:
    """Text with control characters (terminal escape sequences among them) shown as \\xNN, and
    invisible and bidi characters as \\uNNNN, instead of acted on; newlines and tabs are kept.

    >>> printable("title\\x1b]0;pwned\\x07 ok")
    'title\\\\x1b]0;pwned\\\\x07 ok'
    >>> print(printable("gpt\\u200b-4 \\u202egnp.exe"))
    gpt\\u200b-4 \\u202egnp.exe
    """
    return _CONTROL.sub(lambda m: _CONTROL_SHOWN[_CONTROL_CHARS.index(m.group())], text)


def printable_series(values: pl.Series) -> pl.Series:
    """`printable` for a column, at polars speed (one pass finds the rare rows that need it)."""
    hits = values.str.contains(CONTROL).fill_null(False)
    if not hits.any():
        return values
    idx = hits.arg_true()
    return values.scatter(idx, values.gather(idx).str.replace_many(_CONTROL_CHARS, _CONTROL_SHOWN))
