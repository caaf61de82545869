"""Infinity's server log (michaelfeil/infinity, `infinity_emb v2`; read at 0.0.20, 0.0.40, 0.0.60 and
0.0.77: libs/infinity_emb/infinity_emb/log_handler.py, infinity_server.py, inference/select_model.py,
inference/batch_handler.py, fastapi_schemas/docs.py).

The `infinity_emb` logger formats `%(asctime)s %(name)s %(levelname)s: %(message)s` and hands the
record to rich's RichHandler (show_time=False) when rich is installed, as in the Docker image: rich
puts the level in a column of 9, the file and line at the right edge, and wraps the message to
the console width, the rest of it indented by 9 spaces:

    INFO     2024-01-12 16:09:39,441 infinity_emb INFO: model     select_model.py:81
             warmed up, between 0.74-54.98 embeddings/sec at
             batch_size=1

Without rich the line is plain: `2024-01-12 16:09:39,441 infinity_emb INFO: model warmed up, ...`.
uvicorn serves the API and writes its own lines (`INFO:     Uvicorn running on http://0.0.0.0:7997
(Press CTRL+C to quit)`, access lines `INFO:     172.17.0.1:56338 - "POST /embeddings HTTP/1.1"
200 OK`, `ERROR:    [Errno 98] error while attempting to bind on address ...`), and tracebacks
come through raw. A wrapped record is joined back into one event, worded and quoted as the plain
form. Stamps are the container's local time with no zone.

Facts: the startup message (docs.py: `Version 0.0.77`, `http://0.0.0.0:7997/docs`: version and
listen port; uvicorn's `Uvicorn running on`), the served names (`Creating 1 engines:
['BAAI/bge-small-en-v1.5']`, 0.0.7x), the model loaded (`model=`BAAI/bge-small-en-v1.5` selected,
using engine=`torch` and device=`cuda``), loading and ready (`Application startup complete.`).
"""

from __future__ import annotations

import polars as pl

from emblens.formats.base import Source, head_count
from emblens.formats.uvicorn import ACCESS, OK_LINE, UVICORN

RICH = (r"^(?P<col>DEBUG|INFO|WARNING|ERROR|CRITICAL) +(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?P<name>[\w.]+) "
        r"(?P<level>[A-Z]+): ?(?P<msg>.*?)(?: +(?P<src>[\w.]+\.py:\d+))?\s*$")
PLAIN = r"^(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?P<name>[\w.]+) (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL): (?P<msg>.*)$"
WRAPPED = r"^ {9}\S"
SERVED = r"^Creating \d+ ?engines: (?:engines=)?\[(?P<names>[^\]]*)\]"
SELECTED = r"^model=`(?P<model>[^`]+)` selected, using engine=`(?P<engine>[^`]+)`"
VERSION = r"(?:^|\s)Version (?P<ver>\d+\.\d+\.\d+[\w.+-]*)(?:\s|$)"
DOCS = r"\bhttps?://[^\s/]+:(?P<port>\d+)/docs\b"
LISTEN = r"^Uvicorn running on https?://\S+?:(?P<port>\d+)"
READY = r"^Application startup complete\."
WORDS = ("infinity_emb", "Infinity - Embedding Inference Server", "michaelfeil", "embeddings/sec")


class InfinityLog(Source):
    __slots__ = ()
    name = "infinity-log"
    origin = "infinity"
    server = True
    local_time = True
    line_pattern = (r"^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} |^ {9}\S|"
                    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [\w.]+ [A-Z]+: |^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL): ")
    # rich's records and their wrapped lines are kept (a few at start); uvicorn's lines only when they matter
    notable = (r"^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL) +\d{4}-|^ {9}\S|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} |"
               r"(?i)\b(?:error|critical|fatal|exception|warning|traceback|failed)\b|"
               r'HTTP/[\d.]+" [1345]\d\d|Uvicorn running on|Application startup complete|Version \d|/docs\b')
    clock = r"^(?:[A-Z]+ +)?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"
    ok_line = OK_LINE
    samples = (
        "INFO     2024-01-12 16:09:39,441 infinity_emb INFO: model     select_model.py:81",
        "         warmed up, between 0.74-54.98 embeddings/sec at",
        "2024-05-01 10:00:00,000 infinity_emb INFO: model=`BAAI/bge-small-en-v1.5` selected, using engine=`torch` and device=`cuda`",
        "INFO:     Uvicorn running on http://0.0.0.0:7997 (Press CTRL+C to quit)",
        'INFO:     172.17.0.1:56338 - "POST /embeddings HTTP/1.1" 200 OK',
    )

    def sniff(self, head: list[str]) -> float:
        lines = [h for h in head if h.strip()]
        if not lines:
            return 0.0
        hits = head_count(lines, RICH, PLAIN)
        if not hits:
            return 0.0
        return 0.94 if any(w in h for h in lines for w in WORDS) else 0.0

    def parse_rows(self, kept: pl.DataFrame) -> pl.DataFrame:
        raw = pl.col("raw")
        df = kept.with_columns(
            raw.str.extract_groups(RICH).alias("_r"), raw.str.extract_groups(PLAIN).alias("_p"),
            raw.str.extract_groups(ACCESS).alias("_a"), raw.str.extract_groups(UVICORN).alias("_u"),
            raw.str.contains(WRAPPED).alias("_wrapped"),
        ).unnest("_r", "_p", "_a", "_u", separator="__")
        is_rich = pl.col("_r__level").is_not_null()
        # rich's wrapped lines, joined to their record (the last record line kept before them)
        df = df.with_columns(pl.when(is_rich).then(pl.col("line")).alias("_rec"))
        df = df.with_columns(pl.when(is_rich | pl.col("_wrapped")).then(pl.col("_rec").forward_fill()).alias("_rec"))
        tails = (df.filter(pl.col("_wrapped") & ~is_rich & pl.col("_rec").is_not_null())
                 .group_by("_rec", maintain_order=True).agg(raw.str.strip_chars().str.join(" ").alias("_tail"),
                                                            pl.col("line").first().alias("_tail_line")))
        df = df.join(tails, left_on="line", right_on="_rec", how="left", maintain_order="left")
        df = df.filter(~(pl.col("_wrapped") & pl.col("_rec").is_not_null() & ~is_rich))
        is_plain = pl.col("_p__level").is_not_null()
        is_http = pl.col("_a__status").is_not_null()
        is_uvi = pl.col("_u__level").is_not_null() & ~is_http
        record = pl.concat_str([pl.col("_r__msg").replace("", None), pl.col("_tail")], separator=" ", ignore_nulls=True)
        message = (pl.when(is_rich).then(record.fill_null(""))
                   .when(is_plain).then(pl.col("_p__msg"))
                   .when(is_uvi).then(pl.col("_u__msg"))
                   .otherwise(raw))
        ts = pl.coalesce(pl.col("_r__ts"), pl.col("_p__ts"))
        name = pl.coalesce(pl.col("_r__name"), pl.col("_p__name"))
        level = pl.coalesce(pl.col("_r__level"), pl.col("_p__level"), pl.when(is_http).then(pl.lit("INFO")), pl.col("_u__level"))
        df = df.with_columns(
            # a record whose words start on the line after its stamp (rich put only the file there) is that line
            pl.when(is_rich & (pl.col("_r__msg") == "") & pl.col("_tail_line").is_not_null()).then(pl.col("_tail_line"))
            .otherwise(pl.col("line")).alias("line"),
            message.alias("message"),
            # a Python traceback's lines are read as they are
            pl.when(is_rich | is_plain).then(message).otherwise(raw).alias("body"),
            pl.when(is_rich).then(pl.concat_str([ts, pl.lit(" "), name, pl.lit(" "), level, pl.lit(": "), message])).alias("text"),
            pl.when(is_http).then(pl.lit("http")).when(is_rich | is_plain | is_uvi).then(pl.lit("log")).alias("kind"),
            level.replace({"WARN": "WARNING", "FATAL": "CRITICAL"}).alias("level"),
            ts.alias("ts_text"),
            ts.str.to_datetime("%Y-%m-%d %H:%M:%S,%3f", strict=False).cast(pl.Datetime("us")).alias("ts"),
            pl.col("_r__src").alias("logger"),
            pl.lit("").alias("key"),
            pl.col("_a__method").alias("http_method"),
            pl.col("_a__path").alias("http_path"),
            pl.col("_a__status").cast(pl.Int64).alias("http_status"),
            pl.col("_a__client").alias("http_client"),
        )
        m = pl.col("message")
        served = m.str.extract(SERVED, 1).str.extract_all(r"'[^']+'").list.eval(pl.element().str.strip_chars("'")).list.join(",")
        selected = m.str.extract(SELECTED, 1)
        port = pl.coalesce(m.str.extract(DOCS, 1), m.str.extract(LISTEN, 1)).cast(pl.Int64)
        version = m.str.extract(VERSION, 1)
        ready = m.str.contains(READY)
        fact = (pl.when(version.is_not_null()).then(pl.lit("version"))
                .when(port.is_not_null()).then(pl.lit("listen"))
                .when(served.is_not_null() & (served != "")).then(pl.lit("served_models"))
                .when(selected.is_not_null()).then(pl.lit("loading"))
                .when(ready).then(pl.lit("ready")))
        df = df.with_columns(
            fact.alias("fact"),
            pl.when(fact.is_not_null()).then(pl.lit("infinity")).alias("software"),
            version.alias("software_version"),
            port.alias("listen_port"),
            pl.when(served != "").then(served).alias("served_models"),
            selected.alias("model_path"),
            pl.when(fact.is_not_null()).then(pl.lit("fact")).otherwise(pl.col("kind")).alias("kind"),
        )
        # uvicorn's lines carry no time: the stamp of the last line before them (the reader's clock, else a kept one)
        before = (pl.coalesce(pl.col("_clock"), pl.col("ts_text").forward_fill())
                  if "_clock" in df.columns else pl.col("ts_text").forward_fill())
        df = df.with_columns(
            pl.when(pl.col("ts_text").is_null() & (is_http | is_uvi)).then(before).otherwise(pl.col("ts_text")).alias("ts_text"))
        df = df.with_columns(pl.coalesce(pl.col("ts"), pl.col("ts_text").str.slice(0, 19)
                                         .str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False).cast(pl.Datetime("us"))).alias("ts"))
        return df.drop([c for c in df.columns if c.startswith("_")])
