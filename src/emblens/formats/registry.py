"""The formats emblens reads, one line each. Adding a format is a module in `formats/` and a line
here; everything else reads the formats' attributes through the functions below (which origins
are model servers, which write local time, which origins exist at all).

Order breaks ties: the highest `sniff` score wins, and of equal scores the one listed first.
`GenericLog` scores 0.1 on any text, so it is the fallback, last. Record formats (a flow file is
not text) are recognised from raw bytes, before any text check.
"""

from __future__ import annotations

from functools import cache

from emblens.formats.base import Source
from emblens.formats.client import ClientText
from emblens.formats.crash_dump import SGLangCrashDump
from emblens.formats.curl import CurlVerbose
from emblens.formats.envoy import EnvoyAccessLog
from emblens.formats.generic import GenericLog
from emblens.formats.infinity import InfinityLog
from emblens.formats.jaeger import JaegerJson
from emblens.formats.langfuse import LangfuseObservations
from emblens.formats.llamacpp import LlamaCppServerLog
from emblens.formats.lmstudio import LMStudioLog
from emblens.formats.localai import LocalAILog
from emblens.formats.nvidia_smi import NvidiaSmi
from emblens.formats.ollama import OllamaLog
from emblens.formats.otlp import OtlpJson
from emblens.formats.paste import Paste
from emblens.formats.records import HarFile, MitmFlows, RecordSource
from emblens.formats.sglang import SGLangLog
from emblens.formats.tei import TeiJsonLog
from emblens.formats.vllm import VLLMLog
from emblens.reading.context import SourceContext

REGISTRY: tuple[Source, ...] = (
    Paste(),
    VLLMLog(),
    SGLangLog(),
    TeiJsonLog(),
    OllamaLog(),
    LlamaCppServerLog(),
    LMStudioLog(),
    LocalAILog(),
    InfinityLog(),
    EnvoyAccessLog(),
    NvidiaSmi(),
    CurlVerbose(),
    ClientText(),
    GenericLog(),
)
RECORDS: tuple[RecordSource, ...] = (MitmFlows(), HarFile(), OtlpJson(), JaegerJson(), LangfuseObservations(),
                                     SGLangCrashDump())
PASTE = REGISTRY[0]

# origins that no format reads from a file: emblens's own rows (the live addon's captures and its
# /v1/models ask are `capture`, like the record formats')
OTHER_ORIGINS = ("capture",)


def formats() -> tuple[Source, ...]:
    """Every format, text and record ones."""
    return (*REGISTRY, *RECORDS)


@cache
def origins() -> tuple[str, ...]:
    """Every origin an event may have: each format's own and those its parse may set, the model
    servers' first."""
    out: list[str] = list(servers())
    for f in formats():
        for o in (f.origin, *f.origins):
            if o not in out:
                out.append(o)
    return tuple(out) + tuple(o for o in OTHER_ORIGINS if o not in out)


@cache
def servers() -> tuple[str, ...]:
    """The origins of model servers' own logs (`Source.server`)."""
    return tuple(dict.fromkeys(f.origin for f in formats() if f.server))


@cache
def local_time() -> tuple[str, ...]:
    """The origins whose stamps are the writer's local clock with no zone (`Source.local_time`)."""
    return tuple(dict.fromkeys(f.origin for f in formats() if f.local_time))


__all__ = ["PASTE", "RECORDS", "REGISTRY", "Source", "SourceContext", "formats", "local_time", "origins", "servers"]
