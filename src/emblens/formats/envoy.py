"""Envoy's access log: the gateway in front of model servers (Envoy alone, Istio, Envoy Gateway, the
Gateway API Inference Extension, AIBrix, KServe). Three shapes, as Envoy's docs give them:

- the default format string (configuration/observability/access_log, every version since 1.5):

      [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
      %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%
      "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"

- Istio's, which puts %RESPONSE_CODE_DETAILS%, %CONNECTION_TERMINATION_DETAILS% and
  "%UPSTREAM_TRANSPORT_FAILURE_REASON%" after the flags and the upstream cluster and addresses at
  the end;
- Envoy Gateway's default, one JSON object a line (`start_time`, `method`, `x-envoy-origin-path`,
  `protocol`, `response_code`, `response_flags`, `response_code_details`,
  `upstream_transport_failure_reason`, `duration`, `x-request-id`, `:authority`, `upstream_host`, ...).

Each line is a request (kind `http`, origin `envoy`): its method, path, status, duration, the
authority as host, and `X-Request-Id` as the request id (the id a vLLM behind it with
`--enable-request-id-headers` builds its own from). A value not set is `-` (or JSON null). The
line is kept when its status is 0 (the client went away first), 4xx or 5xx, or a response flag is
set. `resp_error` is what Envoy says of it in words: the flags' meanings from its docs (UH "no
healthy upstream", UF "upstream connection failure", UO "upstream overflow", NR "no route", UT
"upstream request timeout", DC "downstream connection termination", ...) and the details as its
local reply's body puts them ("upstream connect error or disconnect/reset before headers. reset
reason: connection failure, transport failure reason: delayed connect error: Connection refused"),
so the rules and Envoy's harvested messages read an access line as they read its answer.
"""

from __future__ import annotations

from types import MappingProxyType

import polars as pl

from emblens.formats.base import Source

TEXT = (r'^\[(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z?)\] "(?P<method>[A-Z]+|-) (?P<path>\S+) (?P<proto>[^"]*)" '
        r'(?P<status>\d{1,3}) (?P<flags>\S+)(?: (?P<details>[^\s"]+) (?P<term>[^\s"]+) "(?P<reason>[^"]*)")? '
        r'(?P<rx>\d+|-) (?P<tx>\d+|-) (?P<duration>\d+|-) (?P<upstream_time>\d+|-) "(?P<xff>[^"]*)" "(?P<ua>[^"]*)" '
        r'"(?P<rid>[^"]*)" "(?P<authority>[^"]*)" "(?P<upstream>[^"]*)"')
JSON = r'^\{.*"response_code":\s*\d.*"response_flags":|^\{.*"response_flags":.*"response_code":\s*\d'
LINE = rf"{TEXT}|{JSON}"
# Envoy's docs (configuration/observability/access_log/usage, %RESPONSE_FLAGS%), in its words
FLAGS = MappingProxyType({
    "UH": "no healthy upstream", "UF": "upstream connection failure", "UO": "upstream overflow (circuit breaking)",
    "NR": "no route configured", "URX": "upstream retry limit exceeded", "NC": "upstream cluster not found",
    "DT": "max stream duration reached", "UT": "upstream request timeout", "LH": "local service failed health check",
    "LR": "connection local reset", "UR": "upstream remote reset", "UC": "upstream connection termination",
    "DC": "downstream connection termination", "DI": "delayed by fault injection", "FI": "fault filter abort",
    "RL": "local rate limited", "UAEX": "unauthorized external service", "RLSE": "rate limit service error",
    "IH": "invalid request headers", "SI": "stream idle timeout", "DPE": "downstream protocol error",
    "UPE": "upstream protocol error", "UMSDR": "upstream max stream duration reached", "OM": "overload manager",
    "DF": "DNS resolution failed",
})
# the details' words as Envoy's local reply puts them in its body (source/common/router/router.cc)
RESET = "upstream connect error or disconnect/reset before headers. reset reason: "


def _words(flags: pl.Expr) -> pl.Expr:
    """The meanings of a `UF,URX` flags field, joined ("upstream connection failure; upstream
    retry limit exceeded"), or null."""
    parts = flags.str.split(",").list.eval(pl.element().replace_strict(dict(FLAGS), default=None)).list.drop_nulls()
    return pl.when(parts.list.len() > 0).then(parts.list.join("; "))


def _details(details: pl.Expr, reason: pl.Expr) -> pl.Expr:
    """`upstream_reset_before_response_started{connection_failure,delayed_connect_error:_Connection_refused}`
    as Envoy's body says it; other details with their underscores as spaces (`no healthy upstream`)."""
    inner = details.str.extract(r"^upstream_reset_before_response_started\{([^}]*)\}", 1).str.replace_all("_", " ")
    why = inner.str.extract(r"^([^,|]*)", 1)
    transport = pl.coalesce(inner.str.extract(r"[,|](.+)$", 1), reason.str.replace_all("_", " "))
    reset = pl.concat_str([pl.lit(RESET), why, pl.when(transport.is_not_null() & (transport != ""))
                           .then(pl.concat_str([pl.lit(", transport failure reason: "), transport])).otherwise(pl.lit(""))])
    plain = pl.when(details.is_not_null() & ~details.is_in(["-", "via_upstream"])).then(details.str.replace_all("_", " "))
    return pl.when(inner.is_not_null()).then(reset).otherwise(plain)


def _null(col: pl.Expr) -> pl.Expr:
    return pl.when(col.is_in(["-", "", "null"])).then(None).otherwise(col)


class EnvoyAccessLog(Source):
    __slots__ = ()
    name = "envoy-access-log"
    origin = "envoy"
    line_pattern = LINE
    notable = (r'^\[[^\]]+\] "[^"]*" (?:0|[45]\d\d|\d{3} (?!-)\S+) |"response_code":\s*(?:0|[45]\d\d)\b'
               r'|"response_flags":\s*"(?!-")')
    samples = (
        '[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" '
        '"nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "tcp://10.0.2.1:80"',
        '[2025-05-02T08:41:07.113Z] "POST /v1/chat/completions HTTP/1.1" 503 UF,URX upstream_reset_before_response_started'
        '{connection_failure,delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" 412 '
        '91 3 - "10.244.0.1" "OpenAI/Python 1.109.1" "6f1c2a8e-0d4b-4f7e-9c3a-2b5d8e7f1a90" "vllm.example.internal" '
        '"10.244.1.17:8000" outbound|8000||vllm.default.svc.cluster.local - 10.96.12.40:8000 10.244.0.1:51322 - default',
        '{":authority":"llm.example.com","bytes_received":91,"bytes_sent":19,"duration":0,"method":"POST","protocol":"HTTP/1.1",'
        '"response_code":503,"response_code_details":"no_healthy_upstream","response_flags":"UH","start_time":'
        '"2025-04-09T11:44:45.639Z","upstream_host":null,"x-envoy-origin-path":"/v1/embeddings","x-request-id":'
        '"ab1e4da7-5f1d-45ea-bb4a-fa1ccd03b82b"}',
    )

    def sniff(self, head: list[str]) -> float:
        hits, lines = self.share(head, LINE)
        return 0.95 if hits and hits >= lines / 2 else 0.0

    def parse_rows(self, kept: pl.DataFrame) -> pl.DataFrame:
        raw = pl.col("raw")
        is_json = raw.str.starts_with("{") & raw.str.contains(JSON)
        t = raw.str.extract_groups(TEXT)

        def field(group: str, key: str) -> pl.Expr:
            return _null(pl.when(is_json).then(raw.str.json_path_match(f"$['{key}']")).otherwise(t.struct.field(group)))

        ts, method, path = field("ts", "start_time"), field("method", "method"), field("path", "x-envoy-origin-path")
        status, flags = field("status", "response_code").cast(pl.Int64, strict=False), field("flags", "response_flags")
        details, reason = field("details", "response_code_details"), field("reason", "upstream_transport_failure_reason")
        upstream, authority = field("upstream", "upstream_host"), field("authority", ":authority")
        said = (pl.concat_str([_words(pl.coalesce(flags, pl.lit(""))), _details(details, reason)], separator="; ",
                              ignore_nulls=True).str.split("; ").list.unique(maintain_order=True).list.join("; "))
        parsed = t.struct.field("status").is_not_null() | is_json
        message = pl.concat_str([pl.lit("envoy "), pl.coalesce(method, pl.lit("-")), pl.lit(" "), pl.coalesce(path, pl.lit("-")),
                                 pl.lit(" "), pl.coalesce(status.cast(pl.String), pl.lit("-")), pl.lit(" "),
                                 pl.coalesce(flags, pl.lit("-")),
                                 pl.when(upstream.is_not_null()).then(pl.concat_str([pl.lit(" upstream "), upstream]))
                                 .otherwise(pl.lit("")),
                                 pl.when(said != "").then(pl.concat_str([pl.lit(": "), said])).otherwise(pl.lit(""))])
        return kept.with_columns(
            pl.when(parsed).then(message).otherwise(raw).alias("message"),
            pl.when(parsed).then(message).otherwise(raw).alias("body"),
            ts.alias("ts_text"),
            ts.str.strip_suffix("Z").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False).cast(pl.Datetime("us")).alias("ts"),
            pl.when(parsed).then(pl.when((status >= 500) | (status == 0)).then(pl.lit("ERROR"))
                                 .when(status >= 400).then(pl.lit("WARNING")).otherwise(pl.lit("INFO"))).alias("level"),
            pl.when(parsed).then(pl.lit("http")).alias("kind"),
            method.alias("http_method"),
            path.str.extract(r"^([^?]*)", 1).alias("http_path"),
            pl.when(status > 0).then(status).alias("http_status"),
            authority.alias("http_host"),
            pl.when(said != "").then(said).alias("resp_error"),
            field("duration", "duration").cast(pl.Float64, strict=False).alias("latency_ms"),
            field("rid", "x-request-id").alias("request_id"),
            pl.lit("").alias("key"),
        )
