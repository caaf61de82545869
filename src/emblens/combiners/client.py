"""What the client sent, counted across captures and pasted commands: requests that carried no
credential at all, and requests that carried one."""

from __future__ import annotations

import polars as pl

from emblens.combiners.facts import Fact

FACTS: dict[str, Fact] = {
    "requests_without_key": Fact("number", "requests seen leaving the client with no credential at all "
                                           "(no Authorization or key header): pasted curl commands, captures"),
    "requests_with_key": Fact("number", "requests seen leaving the client with a credential"),
    "server_command": Fact("text", "the engine a pasted start command runs: vllm (vllm serve, "
                                   "vllm.entrypoints...) or sglang (sglang.launch_server)"),
    "container_seen": Fact("bool", "the evidence shows a container: a docker run/compose command, compose log "
                                   "prefixes, host.docker.internal, a docker json-file or kubectl log"),
}
SERVER_COMMAND = {
    "vllm": r"\bvllm serve\b|-m vllm\.entrypoints\.|vllm/vllm-openai",
    "sglang": r"-m sglang\.launch_server\b|\bsglang serve\b|lmsysorg/sglang",
}
CONTAINER = (r"docker (?:run|compose|exec)|docker-compose|--add-host|host\.docker\.internal|"
             r"^[\w.-]+-\d+\s+\| |kubectl ")


def figures(events: pl.DataFrame) -> dict[str, object]:
    out: dict[str, object] = {}
    if events.height and events.select(pl.col("text").str.contains(CONTAINER).any()).item():
        out["container_seen"] = True
    for engine, command in SERVER_COMMAND.items():
        if events.height and events.select(pl.col("text").str.contains(command).any()).item():
            out["server_command"] = engine
            break
    sent = events.filter((pl.col("kind") == "http") & pl.col("origin").is_in(["client", "capture"]))
    if sent.height == 0:
        return out
    # a browser's sanitized HAR drops the header: "not recorded" says nothing either way
    bare = sent.filter(pl.col("auth_scheme").is_null() & pl.col("auth_other_headers").is_null()).height
    keyed = sent.filter(pl.col("auth_scheme").is_not_null() & (pl.col("auth_scheme") != "not recorded")
                        | pl.col("auth_other_headers").is_not_null()).height
    return {**out, "requests_without_key": bare, "requests_with_key": keyed}
