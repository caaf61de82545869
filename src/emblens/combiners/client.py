"""What the client sent, counted across captures and pasted commands: requests that carried no
credential at all, and requests that carried one."""

from __future__ import annotations

import polars as pl

from emblens.combiners.facts import Fact
from emblens.sources.base import CONTAINER_COMMAND, SERVER_COMMAND

FACTS: dict[str, Fact] = {
    "requests_without_key": Fact("number", "requests seen leaving the client with no credential at all "
                                           "(no Authorization or key header): pasted curl commands, captures"),
    "requests_with_key": Fact("number", "requests seen leaving the client with a credential"),
    "server_command": Fact("text", "the engine a pasted start command runs: vllm (vllm serve, "
                                   "vllm.entrypoints...) or sglang (sglang.launch_server)"),
    "container_seen": Fact("bool", "the evidence shows a container: a docker run/compose command, compose log "
                                   "prefixes, host.docker.internal, a docker json-file or kubectl log"),
}
CONTAINER = CONTAINER_COMMAND + r"|^[\w.-]+-\d+\s+\| |kubectl "   # and compose log prefixes, kubectl


def figures(events: pl.DataFrame) -> dict[str, object]:
    out: dict[str, object] = {}
    if events.height:
        text = pl.col("text")
        seen = events.select(text.str.contains(CONTAINER).any().alias("container"),
                             *(text.str.contains(p).any().alias(e) for e, p in SERVER_COMMAND.items())).row(0, named=True)
        if seen.pop("container"):
            out["container_seen"] = True
        engine = next((e for e, found in seen.items() if found), None)
        if engine:
            out["server_command"] = engine
    sent = events.filter((pl.col("kind") == "http") & pl.col("origin").is_in(["client", "capture"]))
    if sent.height == 0:
        return out
    # a browser's sanitized HAR drops the header: "not recorded" says nothing either way
    bare = sent.filter(pl.col("auth_scheme").is_null() & pl.col("auth_other_headers").is_null()).height
    keyed = sent.filter(pl.col("auth_scheme").is_not_null() & (pl.col("auth_scheme") != "not recorded")
                        | pl.col("auth_other_headers").is_not_null()).height
    return {**out, "requests_without_key": bare, "requests_with_key": keyed}
