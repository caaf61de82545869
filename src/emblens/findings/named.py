"""What a finding concerns, as the evidence names it: the model, the version, the address, the
sizes. A rule's wording quotes the values of the line it matched; a person's paste often names them
elsewhere (the model in the client's code, the version in the issue template, the port in the start
command). For the findings a reader acts on, the values of the kind their id turns on that the
finding does not already quote are read from the same inputs and added to its summary, each with
its file and line ("The evidence names: model `qwen2.5:7b` (issue.md:12)").

The rows of a finding's own sources that may hold a value of a kind are found by the kind's literal
pattern (vectorised); its compiled patterns then read at most `MAX_HIT_ROWS` of them.
"""

from __future__ import annotations

import re
from dataclasses import replace
from types import MappingProxyType
from typing import NamedTuple

import polars as pl

from emblens.events import redact

MAX_FINDINGS = 3          # the findings worded (the report's first ones)
MAX_VALUES = 2            # values of one kind
MAX_ROWS = 20_000         # rows of a finding's sources read (a paste is a few hundred; a large log's first rows)
MAX_LEN = 80              # a value longer than this is not a name
MAX_HIT_ROWS = 2_000      # rows of one kind's literal read by its patterns
MAX_TEXT = 4_096          # characters of a row read

# The kinds of value: patterns whose group 1 is the value (KINDS below adds each kind's literal filter).
# Written from how the software names them: openai-python's and every SDK's `model=`, JSON bodies'
# `"model": "…"`, vLLM's/SGLang's `--model`/`--served-model-name`, Ollama's `ollama pull|run`, servers'
# "model 'x'"; `name==1.2.3` (pip), `name: 1.2.3`/`name version 1.2.3` (issue templates), `vX.Y.Z`.
_MODEL = (
    r"""(?i)["']model(?:_name|_id)?["']\s*:\s*["']([^"'\s]{2,80})["']""",
    r"""(?i)\bmodel(?:_name|_id)?\s*=\s*["']([^"'\s]{2,80})["']""",
    r"""(?i)(?:^|\s)model(?:_name)?\s*:\s*["'`]?([\w][\w.:/@+-]{1,79})""",
    # (`python -m http.server` names a module, not a model)
    r"""(?:--model|--served-model-name|--model-path|--model-id|(?<!python )(?<!python3 )(?<!py )-m)[= ]["']?((?:(?:\.{1,2}/)+|/|~/)?[\w][\w.:/@+-]{1,79})""",
    r"""(?i)\b(?:ollama|lms) (?:pull|run|show|load|get) ([\w][\w.:/@+-]{1,79})""",
    # vLLM's and SGLang's positional model (`vllm serve THUDM/GLM-4.1V-9B-Thinking --limit-mm-per-prompt …`)
    r"""(?i)\bvllm serve\s+["']?((?:(?:\.{1,2}/)+|/|~/)?[\w][\w.:/@+-]{1,79})""",
    r"""(?i)\bmodel ["'`]([^"'`\s]{2,80})["'`]""",
    # a model's directory after the word (`The model /data/hub/models/jinaai/jina-embeddings-v3 references …`)
    r"""(?i)\bmodel ((?:/|~/|\./)[\w.@+-]+(?:/[\w.@+-]+)+)""",
    # an Ollama name with its size tag, wherever it stands: `qwen2:7b`, `deepseek-r1:14b`, `qwen2.5-coder:7b-instruct`
    r"""(?i)(?:^|[^a-z0-9_.:/-])([a-z][a-z0-9_.-]{1,40}:\d+(?:\.\d+)?[bm](?:-[a-z0-9_.-]+)?)\b""",
    r"""(?i)\bmodel identifier ["'`]([^"'`]{2,80})["'`]""",          # LM Studio
    # LiteLLM's provider/model string, as LiteLLM, DSPy, CrewAI and aider take it: `dspy.LM('ollama_chat/llama3.2')`
    r"""["'`](?:ollama_chat|ollama|hosted_vllm|lm_studio|llamacpp|openai|huggingface|xinference|openrouter)/([\w][\w.:@+-]{1,79})["'`]""",
    # a person's words for the model they set or pulled: `changed the model to "mxbai-embed-large"`, `pull model bge-m3`
    r"""(?i)\bmodel (?:to|as) ["'`]([^"'`\s]{2,80})["'`]""",
    r"""(?i)\bpull(?:ed)? (?:the )?model ["'`]?([\w][\w.:/@+-]{1,79})""",
    # a setting that names a model (`EMBEDDING_MODEL_PREF='mxbai-embed-large:latest'`, `OLLAMA_MODEL=qwen2.5:7b`,
    # `RAG_EMBEDDING_MODEL: bge-m3`): the apps' environment files
    r"""\b[A-Z][A-Z0-9_]*MODEL(?:_(?:PREF|NAME|ID))?\s*[=:]\s*["']?([\w][\w.:/@+-]{1,79})""",
    # a repository id standing alone (`Qwen/Qwen3-Embedding-0.6B`, `BAAI/bge-m3`): two parts, the second with a
    # digit or a hyphen, not inside a longer path (`/usr/lib/python3.11/…`, `/v1/chat`)
    r"""(?:^|[\s"'`(=:,\[])([A-Za-z][\w.-]{1,40}/[A-Za-z0-9][\w.:@-]*[\d-][\w.:@-]*)(?:$|[\s"'`),;\]])""",
    # an embedding or reranking model by its family's name, in a person's words (`the maximum input of
    # bge-large-zh-v1.5`, `loading nomic-embed-text-v2-moe fails`)
    r"""(?i)(?<![\w./:-])((?:bge|gte|e5|jina|nomic|mxbai|m3e|text2vec|snowflake-arctic-embed|all-minilm|multilingual-e5|qwen\d?(?:\.\d)?-(?:vl-)?(?:embedding|reranker))-[\w.-]*[\w])""",
)
_VERSION = (
    r"""(?i)(?<![A-Za-z0-9_])(?:vllm|sglang|ollama|transformers|torch|openai|litellm|llama[-_.]?cpp(?:[-_]python)?|text-embeddings-inference|tei|infinity(?:[-_]emb)?|xinference|lmdeploy|mlx[-_]lm|langchain(?:[-_]\w+)?|llama[-_]index|sentence[-_]transformers|lm ?studio|localai|open[- ]?webui|dify|ragflow|anythingllm|pymilvus|qdrant(?:[-_]client)?|chromadb|tgi|cuda|driver)\s*(?:==|>=|<=|~=|@|:|=|\s|\s*version:?\s*|\s*v|\s*(?:的)?版本(?:号)?\s*(?:是|为|[:：])?)\s*v?(\d+\.\d+(?:\.\d+)?(?:\.?(?:post|rc|dev|a|b)\d+)?(?:\+\w+)?)\b""",
    r"""(?i)\bversions?\b[^\n\d]{0,30}?\bv?(\d+\.\d+(?:\.\d+)?(?:\.?(?:post|rc|dev)\d+)?)\b""",
    r"""版本(?:号)?[^\n\d]{0,10}?v?(\d+\.\d+(?:\.\d+)?(?:\.?(?:post|rc|dev)\d+)?)""",
    # llama.cpp's build numbers (`b6324`), beside its name: Ollama, LM Studio and Jan name their llama.cpp by it
    r"""(?i)\b(b\d{4,5})\b[^\n]{0,20}\b(?:llama[-_.]?cpp|llama-server|ggml)|\b(?:llama[-_.]?cpp|llama-server|ggml)\b[^\n]{0,20}?\b(b\d{4,5})\b""",
)
_ADDRESS = (
    # a setting as written (`MILVUS_URI=http://127.0.0.1:19530`, `OPENAI_API_BASE=…`): what a person changes
    r"""\b([A-Z][A-Z0-9_]*_(?:URI|URL|HOST|BASE|ENDPOINT|ADDR|ADDRESS)\s*=\s*["']?(?:https?|wss?)://[\w.-]+(?::\d{2,5})?(?:/[\w./-]*)?)""",
    # ...and a client's or gateway's setting in YAML or code (`api_base: http://ollama:11434/v1`, `base_url="…"`)
    r"""(?<![\w.-])((?:api_base|base_url|api_url|openai_api_base|baseURL|base-url)\s*[:=]\s*["']?(?:https?|wss?)://[\w.-]+(?::\d{2,5})?(?:/[\w./-]*)?)""",
    # ...and a host setting without a scheme (`MILVUS_HOST=127.0.0.1`, `POSTGRES_HOST: privategpt`)
    r"""\b(?!OLLAMA_HOST\b)([A-Z][A-Z0-9_]*_(?:HOST|ADDR|ADDRESS)\s*(?:=|:[ \t]*)(?![a-z]+://)[\w.-]*[\w](?::\d{2,5})?)(?![\w:/.-])""",
    r"""(?i)\b((?:https?|wss?)://(?!(?:[\w-]+\.)*(?:github\.com|githubusercontent\.com)\b)[\w.-]+(?::\d{2,5})?(?:/[\w./-]*)?)""",
    r"""(?i)\bhost='([\w.-]+)', port=\d+""",
    r"""(?i)\b(?:--port|port)[= :]\s*(\d{2,5})\b""",
    r"""(?i)\bOLLAMA_HOST\s*=\s*["']?([\w.:/-]+)""",
)
_ROUTE = (
    r"""(?:^|[\s"'`(])(/(?:v1|v2|api)/[\w/.-]*[\w])""",
)
_SIZE = (
    r"""(?i)\b(\d{2,5})\s*-?(?:d\b|dims?\b|dimensions?\b|dimensional\b)""",
    r"""(?i)\bdim(?:ension)?s?(?:ality)?\b[^\n\d]{0,20}?\(?(\d{2,5})\b""",
)
_TOKENS = (
    r"""(?i)\b(\d{3,8})\s*(?:tokens?\b|token context)""",
    # a setting named whole, as a person changes it (`max_document_length=600`, `RERANKER_MAX_LENGTH=1024`)
    r"""(?i)\b(\w*(?:_len|_length|_limit|_tokens)\s*[=:]\s*\d{3,8})\b""",
    r"""(?i)\b(?:max_model_len|max-model-len|num_ctx|n_ctx|ctx[-_]size|context[-_ ](?:length|window|size)|max_input_length|max-input-length|max_position_embeddings|max_tokens)\b["']?\s*[=:]?\s*(\d{3,8})\b""",
)
# the GPU, as nvidia-smi, a driver, a build's error or a person names it: its product name, its architecture
# (`sm_75`, ROCm's `gfx1032`) or its compute capability
_GPU = (
    r"""(?i)\b((?:(?:NVIDIA|Tesla|Quadro|GeForce) ){0,2}(?:RTX ?(?:A?\d{4})(?: Ti| SUPER)?|GTX ?\d{3,4}(?: Ti)?|TITAN \w+)|"""
    r"""(?:NVIDIA |Tesla )?(?:K80|K40|M40|M60|P4|P40|P100|T4|V100|A10G?|A30|A40|A100|A800|A6000|L4|L40S?|H100|H800|H200|H20|B200|GB200)"""
    r"""(?:-(?:SXM\d?|PCIE|PCIe|NVL)(?:-\d{2,3}GB)?|-\d{2,3}GB)?|"""
    r"""(?:NVIDIA )?Quadro (?:RTX )?[A-Z]{0,2}\d{3,5}\w*|"""
    r"""(?:AMD )?Radeon (?:RX |Pro )?\w*\d{3,4}\w*(?: XT)?|Instinct MI\d{3}X?|MI\d{3}X?|gfx\d{3,4}\w?|sm_\d{2,3})\b""",
    r"""(?i)\b(compute capability (?:of )?\d\.\d)\b""",
)

# a container image, as a compose file, a pod spec, a command or a person names it: `image: vllm/vllm-openai:v0.10.1`,
# `docker run … ghcr.io/ggml-org/llama.cpp:server-cuda`, `FROM nvcr.io/nvidia/pytorch:24.05-py3`, "the
# `kserve/huggingfaceserver:latest-gpu` image": what a CUDA or start-up failure is a property of
_IMAGE_REF = r"(?:[\w.-]+(?::\d{2,5})?/)*[\w.-]+/[\w.-]+(?::[\w.-]+)?(?:@sha256:[0-9a-f]{12,64})?"
_IMAGE = (
    r"""(?i)(?:^|[\s"'`-])image\s*[:=]\s*["'`]?(""" + _IMAGE_REF + r""")""",
    r"""(?i)\bdocker (?:run|pull|create)\b[^\n]{0,400}?\s(""" + _IMAGE_REF.replace("(?::[\\w.-]+)?", ":[\\w.-]+", 1) + r""")(?![\w./:-])""",
    r"""(?i)["'`](""" + _IMAGE_REF + r""")["'`] (?:image|container|docker image)\b""",
    r"""(?i)\b(?:image|container image|docker image) ["'`](""" + _IMAGE_REF + r""")["'`]""",
    r"""(?m)^\s*FROM\s+(""" + _IMAGE_REF + r""")""",
)


class Kind(NamedTuple):
    label: str                        # as the summary names it
    literal: str                      # a row that may hold one matches this (vectorised)
    patterns: tuple[re.Pattern, ...]  # group 1 is the value; the first pattern's values come first


def _kind(label: str, literal: str, patterns: tuple[str, ...]) -> Kind:
    return Kind(label, literal, tuple(re.compile(p) for p in patterns))


KINDS = MappingProxyType({
    "model": _kind("model", r"(?i)model|--served|-m |ollama |lms |vllm serve|(?:bge|gte|e5|jina|nomic|mxbai|m3e|text2vec|arctic-embed|minilm|embedding|reranker)-|[a-z][\w.-]*/[\w.:@-]*\d|:\d+(?:\.\d+)?[bm]\b|[\"'`](?:ollama_chat|ollama|hosted_vllm|lm_studio|llamacpp|openai|huggingface|xinference|openrouter)/", _MODEL),
    "version": _kind("version", r"\d+\.\d+|\bb\d{4,5}\b", _VERSION),
    "address": _kind("address", r"(?i)://|port|host", _ADDRESS),
    "route": _kind("route", r"/(?:v1|v2|api)/", _ROUTE),
    "size": _kind("vector size", r"(?i)dim|\d-?d\b", _SIZE),
    "tokens": _kind("token figure", r"(?i)token|ctx|len|context|max_", _TOKENS),
    "image": _kind("image", r"(?i)image|docker (?:run|pull|create)|^\s*FROM\s", _IMAGE),
    "gpu": _kind("GPU", r"(?i)rtx|gtx|titan|tesla|quadro|radeon|instinct|gfx\d|sm_\d|\b(?:[kpmtvahlb]|gb)\d|compute capab|\bmi\d", _GPU),
})
# the kinds each family of ids turns on, in the order they are named
_FAMILIES = (
    ("embed.dimension_mismatch", ("size", "model")),
    ("embed.unsupported_param", ("size", "model")),
    ("embed.input_too_long", ("tokens", "model")),
    ("request.context_length_exceeded", ("tokens", "model")),
    ("client.version_outdated", ("version", "model")),
    ("model.unsupported_architecture", ("version", "model")),
    ("engine.cuda_driver_too_old", ("version", "gpu", "image")),
    ("engine.startup_failed", ("gpu", "image")),
    ("http.wrong_path", ("route", "address", "model")),
    ("auth.forbidden", ("address",)),
    ("embed.bad_input", ("route", "model")),
    ("model.", ("model",)),
    ("embed.", ("model",)),
    ("mm.", ("model",)),
    ("gpu.", ("model", "gpu")),
    ("net.", ("address",)),
    ("gateway.", ("address", "model")),
    ("server.not_ready", ("address",)),
)
# a file to download (an install script, a package, an archive), not an address a client calls
_DOWNLOAD = re.compile(r"(?i)\.(?:sh|ps1|py|exe|msi|zip|tgz|tar\.gz|deb|rpm|dmg|pkg|whl|gguf|safetensors)$")
# a program's source file and line (`src/llama.cpp:8702`, `server/routes.go:787`), not a model
_SOURCE_FILE = re.compile(r"(?i)\.(?:c|cc|cpp|cxx|h|hpp|cu|cuh|py|go|rs|js|ts|java|rb|sh)(?::\d+)+$|\.(?:py|go|rs|js|ts|java|rb|sh|json|ya?ml|toml|txt|log|md)$")
_NOT_MODEL = frozenset({"none", "null", "true", "false", "default", "string", "str", "name", "model", "models", "not",
                        "your-model", "your_model", "model_name", "xxx", "auto",
                        # a server's name where a model's is expected (`model: vllm qwen2.5:3b`)
                        "vllm", "sglang", "ollama", "openai", "llamacpp", "llama.cpp", "tgi", "tei", "lmstudio",
                        "localai", "xinference"})


def short(source: str) -> str:
    """A source's file name (a member's, for a bundle): the summary is read beside the evidence."""
    return source.replace(":", "/").rsplit("/", 1)[-1] or source


def _quoted(value: str, text: str) -> bool:
    """Whether `text` already says `value` whole (`4000` is not quoted by `40001`, nor `qwen2:7b` by
    `qwen2:7b-instruct`)."""
    return re.search(rf"(?<![\w.:/-]){re.escape(value)}(?![\w:/-])(?!\.\w)", text) is not None


def _kinds(rule: str) -> tuple[str, ...]:
    for prefix, kinds in _FAMILIES:
        if rule == prefix or (prefix.endswith(".") and rule.startswith(prefix)):
            return kinds
    return ()


def _values(rows: pl.DataFrame, kind: str) -> list[tuple[str, str, int]]:
    """(value, source, line) of one kind, pattern by pattern in the order of the rows, first of each
    value. The rows that may hold one are found by the kind's literal pattern (vectorised); its
    patterns then read at most `MAX_HIT_ROWS` of them (a paste's few, a large log's first)."""
    hit = rows.filter(pl.col("text").str.contains(KINDS[kind].literal)).head(MAX_HIT_ROWS)
    if hit.height == 0:
        return []
    texts = list(zip(hit["source"].to_list(), hit["line"].to_list(), hit["text"].str.slice(0, MAX_TEXT).to_list()))
    out: list[tuple[str, str, int]] = []
    seen: set[str] = set()
    for pattern in KINDS[kind].patterns:
        for source, line, text in texts:
            for m in pattern.finditer(text or ""):   # every match of a line (`original_len=4431 truncated_len=4000`)
                value = next((g for g in m.groups() if g), "").strip().rstrip(".,;:)]}'\"`")
                if kind == "model" and (value.lower() in _NOT_MODEL or len(value) < 2 or value.isdigit()
                                        or _SOURCE_FILE.search(value)
                                        # Ollama's runner is started on a blob (`--model …/blobs/sha256-…`),
                                        # not on the name anyone asked for
                                        or "/blobs/sha256" in value):
                    continue
                if kind == "size" and not 16 <= int(value) <= 65_536:
                    continue
                if not value or len(value) > MAX_LEN or value in seen:
                    continue
                if kind == "model" and any(v.endswith("/" + value) for v in seen):   # `bge-m3` of `BAAI/bge-m3`
                    continue
                if kind == "address" and any(value in v for v in seen):   # the URL of a setting named already
                    continue
                if kind == "address" and _DOWNLOAD.search(value):   # an installer's URL (`curl … nemoclaw.sh | bash`)
                    continue
                seen.add(value)
                out.append((value, source, line))
    return out


def _rows(events: pl.DataFrame, sources, *, cited: bool = True) -> pl.DataFrame:
    """The first rows with text of the inputs a finding cites (or, `cited=False`, of the others)."""
    among = pl.col("source").is_in(list(sources))
    return (events.filter((among if cited else ~among) & pl.col("text").is_not_null())
            .head(MAX_ROWS).select("source", "line", "text"))


def with_named(findings: list, events: pl.DataFrame) -> list:
    """The first findings, each with the values its id turns on that the evidence names and its
    wording does not quote yet (copies; others unchanged)."""
    if not findings or events.height == 0:
        return findings
    out = list(findings)
    for i, f in enumerate(findings[:MAX_FINDINGS]):
        kinds = _kinds(f.rule)
        if not kinds or f.role == "symptom" or not f.sources:
            continue
        rows = _rows(events, f.sources)
        if rows.height == 0:
            continue
        said = " ".join([f.summary, *(e.text for e in f.evidence)])
        parts = []
        for kind in kinds:
            label = KINDS[kind].label
            values = _values(rows, kind)
            if kind == "model" and not values:
                # the model is often named by another input of the same evidence (the request beside its
                # error body, the client's code beside the server's log)
                values = _values(_rows(events, f.sources, cited=False), kind)
            fresh = [(v, s, n) for v, s, n in values if not _quoted(v, said)][:MAX_VALUES]
            if fresh:
                named = ", ".join(f"`{redact.printable(v)}` ({short(s)}:{n})" for v, s, n in fresh)
                parts.append(f"{label} {named}")
        if parts:
            out[i] = replace(f, summary=f"{f.summary.rstrip()} The evidence names: {'; '.join(parts)}.")
    return out
