"""What a server left behind when it died: SGLang's crash dump (`formats.crash_dump`), and the
command that replays its requests, for a fix to quote."""

from __future__ import annotations

import re
from types import MappingProxyType

import polars as pl

from emblens.combiners.facts import Fact
from emblens.formats.crash_dump import REPLAY_SAID

FACTS = MappingProxyType({
    "crash_dump_replay": Fact("text", "the command that replays the requests of SGLang's crash dump (scripts/playground/"
                                      "replay_request_dump.py --input-file ...), when the inputs hold one"),
})
REPLAY = re.escape(REPLAY_SAID) + r"(python3 scripts/playground/replay_request_dump\.py .+)$"


def figures(events: pl.DataFrame) -> dict[str, object]:
    if events.height == 0 or "origin" not in events.columns:
        return {}
    found = (events.filter((pl.col("origin") == "sglang") & pl.col("text").str.contains("replay_request_dump.py", literal=True))
             .select(pl.col("text").str.extract(REPLAY, 1)).drop_nulls())
    return {"crash_dump_replay": found.item(0, 0)} if found.height else {}
