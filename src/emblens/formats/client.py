"""Client-side text: Python tracebacks from the openai SDK, httpx/httpcore or requests/urllib3,
standalone or pasted among other lines. Parsed like any text; the traceback chains are assembled
by the shared step in `python_traceback.py`, where the root of the chain is kept next to what the caller saw.
A traceback made only of a server's frames (SGLang's or vLLM's, no client library) is that server's.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import BinaryIO

import polars as pl

from emblens.formats.generic import GenericLog
from emblens.reading.context import Counts, SourceContext

CLIENT_SIGNS = re.compile(
    r"Traceback \(most recent call last\)|^(?:openai|httpx|httpcore|requests|urllib3)\.[\w.]*(?:Error|Exception|Timeout)\b"
    r"|site-packages/(?:openai|httpx|httpcore|requests|langchain)",
    re.M,
)


# a traceback whose frames are a server's own code, with no client library in it, is the server's
SERVER_FRAMES = MappingProxyType({
    "sglang": r"site-packages/sglang/|/sglang/srt/",
    "vllm": r"site-packages/vllm/|/vllm/(?:entrypoints|engine|v1|worker|executor|model_executor)/",
})
ACCESS_SHAPE = r'"[A-Z]{3,7} /\S* HTTP/[\d.]+"\s+\d{3}\b'    # a request line in quotes and its status: an access log's
CLIENT_FRAMES = r"site-packages/(?:openai|httpx|httpcore|requests|urllib3|aiohttp|langchain\w*|litellm)/"


class ClientText(GenericLog):
    __slots__ = ()
    name = "python-traceback"
    origin = "client"
    origins = ("vllm", "sglang")     # a traceback of a server's own frames is the server's
    local_time = False
    # keep the frame lines that tell whose traceback it is, also when the prefilter is on
    notable = GenericLog.notable + "|" + "|".join([*SERVER_FRAMES.values(), CLIENT_FRAMES])

    def sniff(self, head: list[str]) -> float:
        text = "\n".join(head)
        return 0.5 if CLIENT_SIGNS.search(text) else 0.0

    def parse_stream(self, stream: BinaryIO, ctx: SourceContext) -> tuple[pl.DataFrame, Counts]:
        events, counts = super().parse_stream(stream, ctx)
        if events.height:
            # a server's access line pasted under the traceback (`127.0.0.1:60714 - "POST /chat/completions
            # HTTP/1.1" 401`, a proxy's uvicorn) is the server's: it never shows what headers the request carried
            events = events.with_columns(
                pl.when((pl.col("kind") == "http") & (pl.col("origin") == "client")
                        & pl.col("text").str.slice(0, 512).str.contains(ACCESS_SHAPE))
                .then(pl.lit("generic")).otherwise(pl.col("origin")).alias("origin"))
        if events.height == 0 or events.select(pl.col("text").str.contains(CLIENT_FRAMES).any()).item():
            return events, counts
        for server, frames in SERVER_FRAMES.items():
            if events.select(pl.col("text").str.contains(frames).any()).item():
                return events.with_columns(
                    pl.when(pl.col("origin") == "client").then(pl.lit(server)).otherwise(pl.col("origin")).alias("origin")
                ), counts
        return events, counts
