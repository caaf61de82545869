"""Combiners: figures computed across sources, for the rules to decide on.

Sources turn each input into events; combiners look across all of them and compute what no
single line says: the year of vLLM's stamps, which embedding inputs lack a prefix, who holds GPU
memory and how much, the server's facts. They write columns and facts (numbers, names, flags),
never sentences: every conclusion and its wording lives in the YAML rules.

    events = enrich(events, models)   # columns: years, embedding figures, other GPU processes, requests
    facts = combine(events)           # bundle-wide facts, as rules see them (`$name`, `facts:`)
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import polars as pl

from emblens.combiners import client, dumps, embeddings, gpu, linking, routes, time, traces, traffic
from emblens.combiners.facts import FACTS as SERVER_FACTS
from emblens.combiners.facts import VERSION_SUFFIX, Fact, Facts, Mark, server_facts
from emblens.knowledge.modeldata import ModelData

FACTS: Mapping[str, Fact] = MappingProxyType({**SERVER_FACTS, **gpu.FACTS, **client.FACTS, **traffic.FACTS,
                                                **traces.FACTS, **dumps.FACTS, **routes.FACTS,
                                                **embeddings.FACTS})


def enrich(events: pl.DataFrame, models: ModelData, *, year: int | None = None,
           written: dict[str, float] | None = None, tz: str | None = None) -> pl.DataFrame:
    """Columns computed across events (`year`, `written`: see `time.fill_years`; `tz`, the servers'
    zone: `time.to_utc`)."""
    events = time.to_utc(time.fill_years(events, year, written), tz)
    events = embeddings.derive(events, models)
    return linking.link(gpu.mark_other_processes(events))


def combine(events: pl.DataFrame, models: ModelData | None = None) -> Facts:
    """The facts of a bundle: what the servers said, and the figures computed from everything
    (`models`: the routes each server release has, for a 404 on a route newer than the server)."""
    facts = server_facts(events)
    facts.figures.update(gpu.figures(events, facts))
    facts.figures.update(client.figures(events))
    facts.figures.update(traces.figures(events))
    facts.figures.update(dumps.figures(events))
    facts.figures.update(embeddings.figures(events))
    if models is not None and models.routes:
        facts.figures.update(routes.figures(events, facts.as_values(), models.routes))
    return facts


def is_fact(name: str) -> bool:
    return name in FACTS or name.endswith(VERSION_SUFFIX)


__all__ = ["FACTS", "Fact", "Facts", "Mark", "combine", "enrich", "is_fact"]
