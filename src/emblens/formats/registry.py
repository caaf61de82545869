"""Source adapters: one per input format. Each turns a frame of raw lines into event rows.

An adapter is a `Source` (see `base.py`): a name, a `sniff` score on a member's first bytes, and
a parser. Line-oriented logs go through the shared streaming path; small whole-file formats
(curl -v, nvidia-smi) through `WholeFileSource`; record files (flows, HAR) through `RecordSource`.
"""

from __future__ import annotations

from emblens.formats.base import Source
from emblens.formats.client import ClientText
from emblens.formats.curl import CurlVerbose
from emblens.formats.generic import GenericLog
from emblens.formats.nvidia_smi import NvidiaSmi
from emblens.formats.paste import Paste
from emblens.formats.records import HarFile, MitmFlows, RecordSource
from emblens.formats.sglang import SGLangLog
from emblens.formats.vllm import VLLMLog
from emblens.reading.context import SourceContext

# Highest sniff score wins; GenericLog scores 0.1 on any text, so it is the fallback.
REGISTRY: tuple[Source, ...] = (Paste(), VLLMLog(), SGLangLog(), NvidiaSmi(), CurlVerbose(), ClientText(), GenericLog())
PASTE = REGISTRY[0]
# Sources recognised from raw bytes before any text check (a flow file is not text).
RECORDS: tuple[RecordSource, ...] = (MitmFlows(), HarFile())


__all__ = ["PASTE", "RECORDS", "REGISTRY", "Source", "SourceContext"]
