"""Secret masking: the one place where tokens, keys and passwords are removed.

Applied to every line before it enters the event table, so no report, export or log of emblens
can show a secret. The shape survives (`<empty>`, a known placeholder such as `EMPTY`, or
`<key: 32 chars>` / `<sk-key: 51 chars>`), because the shape is often the diagnosis.

>>> mask_text("Authorization: Bearer sk-abcdefghijklmnopqrstuvwx")
'Authorization: Bearer <sk-key: 27 chars>'
>>> mask_text("api_key='EMPTY'")
"api_key='EMPTY'"
"""

from __future__ import annotations

import re

import polars as pl

# Values that are not secrets: what people pass when the server has no --api-key.
PLACEHOLDERS = frozenset(
    v.lower()
    for v in (
        "EMPTY", "none", "null", "nil", "dummy", "fake", "placeholder", "sk-xxx", "sk-no-key-required",
        "token-abc123", "your-api-key", "your_api_key", "YOUR_API_KEY", "xxx", "***", "not-needed",
        "not-used", "na", "n/a", "test", "abc123", "sk-1234", "changeme",
    )
)

_VALUE = r"(?!<)[^\s\"',;)\]}]+"

# (pattern, index of the group holding the secret). Order matters: specific forms first.
_PATTERNS: list[tuple[re.Pattern[str], int]] = [
    (re.compile(r"(?i)(\bbearer[ \t]+)(" + _VALUE + ")"), 2),
    (re.compile(r"(?i)(\bbasic[ \t]+)([A-Za-z0-9+/=]{6,})"), 2),
    (re.compile(r"(?i)(--(?:api-key|hf-token|token|password)(?:[ \t]+|=)[\"']?)(" + _VALUE + ")"), 2),
    (
        re.compile(
            r"(?i)(\b(?:[A-Za-z0-9]+_)*(?:api[_-]?key|secret[_-]?key|secret|access[_-]?token|auth[_-]?token|"
            r"hf[_-]?token|token|password|passwd)[\"']?[ \t]*[:=][ \t]*(?:\[[ \t]*)?[\"']?)(" + _VALUE + ")"
        ),
        2,
    ),
    (re.compile(r"(?i)(\b(?:x-api-key|api-key)[\"']?[ \t]*[:=][ \t]*[\"']?)(" + _VALUE + ")"), 2),
    (re.compile(r"(\w+://[^/\s:@]+:)([^@\s/]+)(@)"), 2),
    (re.compile(r"()(\bsk-[A-Za-z0-9_-]{12,})"), 2),
    (re.compile(r"()(\bhf_[A-Za-z0-9]{20,})"), 2),
]

# One linear-time pattern that finds every line any of the above could touch; only those lines
# go through the Python replacement, so big logs are masked at polars speed.
PREFILTER = (
    r"(?i)(?:bearer|basic)[ \t]+[^\s'\"]|api[_-]?key|secret|token[\"']?[ \t]*[:=]|password|passwd|"
    r"--[a-z-]*token[ \t=]|\bsk-[A-Za-z0-9_-]{12}|\bhf_[A-Za-z0-9]{20}|://[^/\s:@]+:[^@\s/]+@"
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


def _replace(match: re.Match[str], group: int) -> str:
    out = []
    for i in range(1, (match.re.groups or 0) + 1):
        part = match.group(i) or ""
        out.append(shape(part) if i == group else part)
    return "".join(out)


def mask_text(text: str) -> str:
    """Mask every secret in one string."""
    for pattern, group in _PATTERNS:
        text = pattern.sub(lambda m, g=group: _replace(m, g), text)
    return text


def mask_series(lines: pl.Series) -> pl.Series:
    """Mask a column of lines; only the few lines the prefilter flags leave polars."""
    hits = lines.str.contains(PREFILTER).fill_null(False)
    if not hits.any():
        return lines
    idx = hits.arg_true()
    masked = pl.Series([mask_text(t) for t in lines.gather(idx).to_list()], dtype=pl.String)
    return lines.scatter(idx, masked)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Text with control characters (terminal escape sequences among them) shown as \\xNN
    instead of acted on; newlines and tabs are kept."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
