"""Client-side text: Python tracebacks from the openai SDK, httpx/httpcore or requests/urllib3,
standalone or pasted among other lines. Parsed like any text; the traceback chains are assembled
by the shared step in `base.py`, where the root of the chain is kept next to what the caller saw.
"""

from __future__ import annotations

import re

from emblens.sources.generic import GenericLog

CLIENT_SIGNS = re.compile(
    r"Traceback \(most recent call last\)|^(?:openai|httpx|httpcore|requests|urllib3)\.[\w.]*(?:Error|Exception|Timeout)\b"
    r"|site-packages/(?:openai|httpx|httpcore|requests|langchain)",
    re.M,
)


class ClientText(GenericLog):
    def __init__(self) -> None:
        super().__init__(name="python-traceback", origin="client")

    def sniff(self, head: list[str]) -> float:
        text = "\n".join(head)
        return 0.5 if CLIENT_SIGNS.search(text) else 0.0
