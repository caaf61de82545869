"""Unicode classes cost polars' (Rust) engine a slow compile; on ASCII text they are not needed.

Unicode's `\\w`, `\\d` and `\\s` are large classes: the masking prefilter, a few dozen alternatives
that use them, costs polars some 7-9 ms to compile, once per thread, on every run; with ASCII
classes 1-3 ms. On a line of ASCII characters the two mean the same, so `contains` runs the ASCII
pattern on every line and the Unicode one only on the lines that hold another character (none in
most logs: then it is never compiled).

>>> ascii_classes(r"\\bkey[\\w.-]*\\s*=")
'(?-u:\\\\b)key[A-Za-z0-9_.-]*[\\\\t\\\\n\\\\x0B\\\\f\\\\r \\\\x1C-\\\\x1F]*='
"""

from __future__ import annotations

import functools
import types

import polars as pl

# Python's `\s` (the exact patterns are Python's) also counts the information separators
_ASCII = types.MappingProxyType({"w": "A-Za-z0-9_", "d": "0-9", "s": r"\t\n\x0B\f\r \x1C-\x1F"})
NON_ASCII = r"[^\x00-\x7F]"


@functools.lru_cache(maxsize=64)
def ascii_classes(pattern: str) -> str:
    """`pattern` with ASCII classes for `\\w`, `\\d`, `\\s`, their negations and `\\b`: the same
    matches on ASCII text."""
    out: list[str] = []
    depth = 0               # inside how many [...] (Rust's classes nest)
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt in "wWdDsS":
                members = _ASCII[nxt.lower()]
                if nxt.isupper():
                    out.append(f"[^{members}]")
                else:
                    out.append(members if depth else f"[{members}]")
            elif nxt in "bB" and not depth:
                out.append(f"(?-u:\\{nxt})")
            else:
                out.append(pattern[i:i + 2])
            i += 2
            continue
        if c == "[":
            depth += 1
            head = "[^" if pattern.startswith("[^", i) else "["
            i += len(head)
            out.append(head)
            if i < n and pattern[i] == "]":     # a `]` first in a class is a member
                out.append("\\]")
                i += 1
            continue
        if c == "]" and depth:
            depth -= 1
        out.append(c)
        i += 1
    return "".join(out)


def contains(values: pl.Series, pattern: str) -> pl.Series:
    """`values.str.contains(pattern)` (nulls false), with the Unicode pattern compiled only for
    the values that hold a character beyond ASCII."""
    fast = ascii_classes(pattern)
    hits = values.str.contains(fast).fill_null(False)
    if fast == pattern:
        return hits
    wide = values.str.contains(NON_ASCII).fill_null(False)
    if not wide.any():
        return hits
    idx = wide.arg_true()
    return hits.scatter(idx, values.gather(idx).str.contains(pattern).fill_null(False))
