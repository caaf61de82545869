
"""The `emblens` command: declares options, calls the library, turns its errors into one line
and an exit status (0 ran, 1 --fail-on matched, 2 unusable input or arguments).

No `from __future__ import annotations` here: typer reads every command's annotations when it
builds the CLI, and evaluating them from strings cost each run some 20 ms."""

import os
import sys
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Optional

import typer

from emblens._version import __version__
from emblens.errors import EmblensError
from emblens.rules.severity import SEVERITIES

app = typer.Typer(
    name="emblens",
    help=(
        "Find out why a call to a self-hosted OpenAI-compatible model server (vLLM, SGLang) failed.\n\n"
        "Give it what you have - server logs, client tracebacks, a zip or tar.gz of them - and it "
        "prints the root cause, the evidence (file:line) and the fix.\n\n"
        "Example:  emblens analyze incident.zip --format markdown --output postmortem.md"
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
rules_app = typer.Typer(help="List, show, lint and test rules (the built-in ones or your own folder).",
                        no_args_is_help=True)
app.add_typer(rules_app, name="rules")


class Format(str, Enum):
    text = "text"
    markdown = "markdown"
    json = "json"
    html = "html"
    sarif = "sarif"
    github = "github"


Severity = Enum("Severity", {s: s for s in SEVERITIES}, type=str)
ProbeFailOn = Enum("ProbeFailOn", {**{s: s for s in SEVERITIES}, "never": "never"}, type=str)


def _rule_ids(incomplete: str) -> list[str]:
    """Shell completion of a rule id, an area or a glob's start: the built-in rules' ids and areas."""
    try:
        from emblens.rules.loader import load_rules

        ids = sorted(r.id for r in load_rules([]).rules)
    except Exception:      # completion must never print a traceback into the shell
        return []
    areas = sorted({i.split(".")[0] for i in ids})
    return [x for x in (*areas, *ids) if x.startswith(incomplete)]


def _fail(message: str) -> None:
    typer.echo(f"emblens: error: {message}", err=True)
    raise typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"emblens {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    pass


class _Progress:
    """Progress on stderr while members are read; silent when stderr is not a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self._progress = None
        self._task = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                      console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("reading", total=None)
        return self

    def __call__(self, label: str, done: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=f"reading {label[-50:]}  {done / 1048576:,.0f} MiB")

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()


PathsArg = Annotated[list[str], typer.Argument(
    help="Bundles (.zip, .tar, .tar.gz), folders, files (also .gz), or - for standard input.", show_default=False)]
RulesOpt = Annotated[Optional[list[Path]], typer.Option(
    "--rules", help="A folder of your own rule files, used with the built-in ones (repeatable).", show_default=False)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display on stderr.")]
RedactOpt = Annotated[Optional[Path], typer.Option(
    "--redact", help="A file of your own patterns to mask, one regex per line (the first group is masked, else the whole "
    "match).", show_default=False)]
YearOpt = Annotated[Optional[int], typer.Option(
    "--year", help="The year of stamps that carry none (vLLM's MM-DD). Default: from another source, else from when each "
    "file was last written.", min=1970, max=2100, show_default=False)]


def _zone(value: str | None) -> str | None:
    from emblens.settings import Clock

    if value is None:
        return None
    try:
        return Clock(tz=value).tz
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


TzOpt = Annotated[Optional[str], typer.Option(
    "--tz", help="The time zone the servers' logs and nvidia-smi are written in (IANA name: Europe/Berlin). Their times "
    "are moved to UTC, like every other time in the report. Default: UTC.", callback=_zone, show_default=False)]


# report formats by the output file's extension
EXTENSIONS = MappingProxyType({".txt": Format.text, ".text": Format.text, ".log": Format.text, ".md": Format.markdown,
              ".markdown": Format.markdown, ".json": Format.json, ".html": Format.html, ".htm": Format.html,
              ".sarif": Format.sarif})


def _format_of(output: str, explicit: Format | None) -> Format:
    """--format when given, else the extension of -o (stdout, a name without one, /dev/null: text)."""
    if explicit is not None:
        return explicit
    if output == "-" or not Path(output).suffix:
        return Format.text
    fmt = EXTENSIONS.get(Path(output).suffix.lower())
    if fmt is None:
        _fail(f"{output}: no report format for {Path(output).suffix or 'a name without an extension'}; "
              f"use {', '.join(sorted(EXTENSIONS))} or say --format")
    return fmt


_AGO = MappingProxyType({"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800})


def _when(value: str | None, option: str, now=None):
    """An ISO date or time (`2025-11-20`, `2025-11-20 09:14`, `2025-11-20T09:14:02Z`), or a time
    before now (`1h`, `30m`, `2d`, `1h30m`, as `docker logs --since` reads them), as naive UTC.

    >>> from datetime import datetime
    >>> _when("1h30m", "--since", now=datetime(2025, 11, 20, 12, 0))
    datetime.datetime(2025, 11, 20, 10, 30)
    """
    if value is None:
        return None
    import re
    from datetime import datetime, timedelta, timezone

    text = value.strip().lower()
    if re.fullmatch(r"-?(?:\d{1,9}[smhdw])+", text):
        now = now or datetime.now(timezone.utc).replace(tzinfo=None)
        return now - timedelta(seconds=sum(int(n) * _AGO[u] for n, u in re.findall(r"(\d+)([smhdw])", text)))
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        _fail(f"{option} {value!r}: not a date or time; write it as 2025-11-20, 2025-11-20T09:14:00, or a time "
              "before now: 30m, 2h, 1d")
    return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t


FormatOpt = Annotated[Optional[Format], typer.Option("--format", "-f", help="text for the terminal, markdown for a postmortem, "
                                                     "json for tools, html (one file with charts) to attach, sarif for code "
                                                     "scanning, github for annotations in a GitHub Actions log. Default: by "
                                                     "-o's extension (.txt, .md, .json, .html, .sarif), text on stdout.",
                                                     show_default=False)]
OutputOpt = Annotated[Optional[list[str]], typer.Option("--output", "-o", help="Write the report to this file (repeatable: "
                                                        "-o report.md -o report.html -o report.json); - is stdout.", show_default=False)]
FailOnOpt = Annotated[Optional[Severity], typer.Option("--fail-on", help="Exit 1 when a finding of this severity or worse exists (for CI).")]
WidthOpt = Annotated[int, typer.Option(help="Width of the text report.", min=40)]
# (the help is rich markup: a bracket that is text is escaped)
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="A settings file to use instead of the nearest "
                                                   "emblens.toml or pyproject.toml \\[tool.emblens].", show_default=False)]
NoConfigOpt = Annotated[bool, typer.Option("--no-config", help="Read no settings file.")]


SelectOpt = Annotated[Optional[list[str]], typer.Option(
    "--select", help="Run only these rules: an id, an area (auth) or a glob (auth.*, *.oom); repeatable.",
    show_default=False, autocompletion=_rule_ids)]
IgnoreOpt = Annotated[Optional[list[str]], typer.Option(
    "--ignore", help="Do not run these rules (same forms as --select).", show_default=False, autocompletion=_rule_ids)]
SinceOpt = Annotated[Optional[str], typer.Option(
    "--since", help="Only events at or after this time (UTC, ISO: 2025-11-20T09:00), or this long before now (30m, 2h, "
    "1d); events without a time are kept.", show_default=False)]
UntilOpt = Annotated[Optional[str], typer.Option(
    "--until", help="Only events at or before this time (UTC, ISO, or 30m, 2h, 1d before now).", show_default=False)]


def _config_zone(cfg) -> str | None:
    from emblens.settings import Clock

    try:
        return Clock(tz=cfg.tz).tz if cfg.tz else None
    except ValueError as e:
        _fail(f"{cfg.path}: tz: {e}")


def _config(path: Path | None, disabled: bool, quiet: bool):
    """The settings file's (emblens.frontends.config), said on stderr when one is used; an error is one line."""
    from emblens.frontends import config

    try:
        found = config.load(path, disabled=disabled)
    except EmblensError as e:
        _fail(str(e))
    if found.path is not None and not quiet:
        from emblens.events.redact import printable

        typer.echo(f"emblens: note: {printable(found.describe())}", err=True)
    return found


@app.command()
def analyze(
    paths: PathsArg,
    format: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    rules: RulesOpt = None,
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    redact: RedactOpt = None,
    year: YearOpt = None,
    tz: TzOpt = None,
    width: WidthOpt = 80,
    quiet: QuietOpt = False,
    explain: Annotated[Optional[list[str]], typer.Option("--explain", help="Print why this rule fired or did not (which "
                                                         "condition failed, on which lines) instead of the report; repeatable.",
                                                         show_default=False, autocompletion=_rule_ids)] = None,
    config: ConfigOpt = None,
    no_config: NoConfigOpt = False,
    follow: Annotated[bool, typer.Option("--follow", "-F", help="Keep reading the files (or stdin) as they grow, like tail "
                                         "-f, and print each finding when it first appears (text, or JSON lines with "
                                         "--format json); Ctrl-C ends it and writes each -o report (format by its "
                                         "extension).")] = False,
) -> None:
    """Find the root cause of a failure in logs, tracebacks and bundles of them.

    Members are recognised by content, not by name: vLLM, SGLang and text-embeddings-inference
    (--json-output) server logs, Python/openai client tracebacks, nvidia-smi, captures (mitmproxy
    flows, HAR, curl -v), pastes of all of them, any other text as a generic log. Unreadable members are listed as skipped
    and the rest is still analysed. Secrets (keys, bearer tokens, passwords) never appear in the report.

    Example:  emblens analyze incident.zip -o postmortem.md -o postmortem.json
    """
    from emblens import diagnose
    from emblens.run import Run

    targets = [(o, _format_of(o, format)) for o in (output or ["-"])]
    try:
        settings, fail_on = _analysis_settings(config, no_config, quiet, fail_on, rules, select, ignore, since, until,
                                               redact, year, tz)
        if explain:     # why these rules fired or did not, on stdout instead of the report
            from emblens.rules.explain import explain_inputs, render_explanation

            with _Progress(quiet) as progress:
                analysis, explained = explain_inputs(paths, settings, explain, progress=progress)
            _nothing_read(analysis, paths)
            _write("\n".join(render_explanation(x) for x in explained), None)
            return
        if follow:
            _follow(paths, Run(settings), format, output or [], width, fail_on, quiet)
            return
        with _Progress(quiet) as progress:
            analysis = diagnose.run(paths, Run(settings), progress=progress)
        _nothing_read(analysis, paths)
        _emit(analysis, targets, width, fail_on)
    except EmblensError as e:
        _fail(str(e))


def _analysis_settings(config, no_config: bool, quiet: bool, fail_on, rules, select, ignore, since, until, redact,
                       year, tz):
    """The settings of an analysis (`analyze`, `fleet`) and its --fail-on: the command line's
    options, and the settings file's values where the command line says nothing (its rule folders
    and yours both). A bad value is one line and exit status 2."""
    from emblens import diagnose

    window = (_when(since, "--since"), _when(until, "--until"))
    if window[0] and window[1] and window[0] > window[1]:
        _fail(f"--since {since} is after --until {until}")
    cfg = _config(config, no_config, quiet)
    fail_on = fail_on if fail_on is not None else (Severity(cfg.fail_on) if cfg.fail_on else None)
    tz = tz if tz is not None else _config_zone(cfg)
    try:
        settings = diagnose.settings(rule_dirs=[*cfg.rules, *(rules or [])], select=select or cfg.select,
                                     ignore=ignore or cfg.ignore, since=window[0], until=window[1],
                                     redact_patterns=redact or cfg.redact, year=year or cfg.year, tz=tz)
    except ValueError as e:
        _fail(str(e))
    return settings, fail_on


def _follow(paths: list[str], run, fmt: Format | None, outputs: list[str], width: int, fail_on, quiet: bool) -> None:
    """`analyze --follow`: findings on stdout as they appear, the reports of -o at the end."""
    from emblens.frontends.follow import Follower, finding_json, finding_line

    stream = fmt or Format.text       # what is printed as it happens; each -o report's format is its extension's
    if stream not in (Format.text, Format.json):
        _fail(f"--follow prints findings as text or JSON lines, not {stream.value}; write a {stream.value} report with -o")
    for p in paths:
        if p != "-" and not Path(p).is_file():
            _fail(f"{p}: --follow reads files that grow (or - for standard input), not "
                  f"{'a folder' if Path(p).is_dir() else 'this'}" if Path(p).exists() else f"{p}: no such file")
        if p != "-" and Path(p).suffix.lower() in (".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".zst"):
            _fail(f"{p}: --follow reads plain text that grows; an archive does not: analyze it without --follow")
    targets = [(o, _format_of(o, None)) for o in outputs]

    def say(finding, analysis, again: bool = False) -> None:
        line = finding_json(finding, analysis, again) if stream == Format.json else finding_line(finding, again)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def note(text: str) -> None:
        from emblens.events.redact import printable

        typer.echo(f"emblens: note: {printable(text)}", err=True)

    follower = Follower(paths, run, say=say, note=note)
    if not quiet:
        typer.echo(f"emblens: following {', '.join(paths)} (Ctrl-C to stop)", err=True)
    interrupted = False
    try:
        follower.follow()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        follower.close()
    if follower.analysis is None:
        follower.evaluate(announce=False)
    if not quiet:
        found = len(follower.analysis.findings)
        typer.echo(f"emblens: {'stopped' if interrupted else 'input ended'}: {found} finding(s)", err=True)
    _emit(follower.analysis, targets, width, fail_on)      # each -o report (none: the notices), and --fail-on


def _nothing_read(analysis, paths: list[str]) -> None:
    """No input could be read (an empty folder, empty or binary files, empty stdin): one line and
    exit status 2, not a report that says nothing was found (a CI job must not go green on nothing)."""
    from emblens.events.redact import printable

    if analysis.inputs or analysis.collection is not None or analysis.probe is not None:
        return
    why = "; ".join(f"{s.label}: {s.reason}" for s in analysis.skipped[:3])
    more = f" (and {len(analysis.skipped) - 3} more)" if len(analysis.skipped) > 3 else ""
    _fail(printable("nothing could be read in " + ", ".join(paths[:3]) + (f" ({why}{more})" if why else " (no files)")))


def _emit(analysis, targets: list[tuple[str, Format]], width: int, fail_on) -> None:
    """Notices on stderr, the report to each target, and --fail-on's exit status."""
    from emblens.report import render

    for notice in analysis.notices:
        typer.echo(f"emblens: note: {notice}", err=True)
    for line in _template_errors(analysis):
        typer.echo(line, err=True)
    for target, fmt in targets:
        color = target == "-" and fmt == Format.text and sys.stdout.isatty() and "NO_COLOR" not in os.environ
        _write(render(analysis, fmt.value, width=width, color=color), target, fmt.value)
    if fail_on is not None:
        worst = SEVERITIES.index(fail_on.value)
        if any(SEVERITIES.index(f.severity) <= worst for f in analysis.findings):
            raise typer.Exit(1)


def _template_errors(analysis) -> list[str]:
    """One line per rule whose message or remedy template failed or ran past its budget (the
    report shows the rest of the analysis, and the failed text in place of that template's)."""
    from emblens.events.redact import printable
    from emblens.rules.templates import ERROR

    failed: dict[str, list[str]] = {}
    for f in analysis.findings:
        for text in (f.summary, *f.remedy):
            at = text.find(ERROR)
            if at >= 0:
                why = printable(text[at + len(ERROR):].split("]", 1)[0])[:160]
                if why not in failed.setdefault(f.rule, []):
                    failed[f.rule].append(why)
    return [f"emblens: error: rule {rule}: {'a template' if len(whys) == 1 else f'{len(whys)} templates'} failed: "
            + "; ".join(whys) for rule, whys in failed.items()]


def _write(text: str, output: str | None, what: str = "report") -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
        return
    _save(output, lambda f: f.write(text.encode("utf-8")))
    typer.echo(f"emblens: wrote {output} ({what})", err=True)


def _save(output: str, fill) -> None:
    """Write a file through `fill(binary file)`, whole or not at all (`emblens.outfiles`): a full
    disk or an error half-way leaves the file that was there as it was. What is not a regular file
    (/dev/null, a pipe, /dev/stdout) is written straight, as it cannot be replaced. Any failure is
    one line and exit status 2."""
    import stat

    from emblens import outfiles

    try:
        mode = os.stat(output).st_mode
    except OSError:
        mode = None
    try:
        if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            with open(output, "wb") as f:
                fill(f)
        else:
            with outfiles.replacing(output) as f:
                fill(f)
    except EmblensError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot write {output}: {e.strerror or e}")
    except Exception as e:   # the table's writer (polars) failing: its message, on one line
        _fail(f"cannot write {output}: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}")


# A cell that starts with one of these is a formula to a spreadsheet (=HYPERLINK(...), +SUM(...),
# -2+3, @SUM(...), and after a tab or carriage return): OWASP's CSV injection rule puts a single quote
# in front, which makes it text. Only the CSV export: JSON lines and Parquet keep the values.
_FORMULA = r"^([=+\-@\t\r])"


def csv_safe(table):
    """The event table with every text cell that a spreadsheet would run as a formula made text."""
    import polars as pl

    return table.with_columns(pl.col(c).str.replace(_FORMULA, "'$1") for c, t in table.schema.items() if t == pl.String)


@app.command()
def events(
    paths: PathsArg,
    output: Annotated[str, typer.Option("--output", "-o", help="File to write: .parquet, .csv or .jsonl (by extension); "
                                        "- writes JSON lines to stdout.")],
    redact: RedactOpt = None,
    year: YearOpt = None,
    tz: TzOpt = None,
    quiet: QuietOpt = False,
    config: ConfigOpt = None,
    no_config: NoConfigOpt = False,
) -> None:
    """Dump the normalised event table (every line of every input, secrets masked)."""
    from emblens.diagnose import load_events

    suffix = ".jsonl" if output == "-" else Path(output).suffix.lower()
    if suffix not in (".parquet", ".csv", ".jsonl", ".ndjson"):
        _fail(f"{output}: the extension picks the format: use .parquet, .csv or .jsonl (or - for JSON lines on stdout)")
    cfg = _config(config, no_config, quiet)
    tz = tz if tz is not None else _config_zone(cfg)
    redact = redact or cfg.redact
    try:
        with _Progress(quiet) as progress:
            table, inputs, skipped = load_events(paths, keep_all=True, progress=progress, year=year or cfg.year, tz=tz,
                                                 redact_patterns=str(redact) if redact else None, rule_dirs=list(cfg.rules))
    except EmblensError as e:
        _fail(str(e))
    if output == "-":
        sys.stdout.write(table.write_ndjson())
    elif suffix == ".parquet":
        _save(output, table.write_parquet)
    elif suffix == ".csv":
        _save(output, csv_safe(table).write_csv)
    else:
        _save(output, table.write_ndjson)
    for s in skipped:
        typer.echo(f"skipped {s.label}: {s.reason}", err=True)
    where = "stdout" if output == "-" else output
    typer.echo(f"{table.height:,} events from {len(inputs)} input(s) written to {where}", err=True)


@app.command()
def collect(
    output: Annotated[Path, typer.Option("--output", "-o", help="The zip to write (emblens analyze reads it).")] = Path("emblens-bundle.zip"),
    docker: Annotated[Optional[list[str]], typer.Option("--docker", help="A container: its logs (with timestamps), "
                      "docker inspect (image, command line, env with secrets masked, restarts, shm size) and its package "
                      "versions. Repeatable.", show_default=False)] = None,
    k8s: Annotated[Optional[list[str]], typer.Option("--k8s", help="A pod: kubectl logs (and the previous container's), "
                   "describe, package versions. Repeatable.", show_default=False)] = None,
    namespace: Annotated[Optional[str], typer.Option("--namespace", "-n", help="The pods' namespace.", show_default=False)] = None,
    container: Annotated[Optional[str], typer.Option("--container", "-c", help="The container in the pod.", show_default=False)] = None,
    log: Annotated[Optional[list[str]], typer.Option("--log", help="A log file or a glob ('/var/log/vllm/*.log*'; rotated "
                   ".gz files are read). Repeatable.", show_default=False)] = None,
    journal: Annotated[Optional[list[str]], typer.Option("--journal", help="A systemd unit's journal. Repeatable.",
                       show_default=False)] = None,
    url: Annotated[Optional[str], typer.Option("--url", help="The server's base URL: GET /v1/models, /health, /version and "
                   "the first lines of /metrics.", show_default=False)] = None,
    api_key_env: Annotated[Optional[str], typer.Option("--api-key-env", help="The environment variable holding the key "
                           "for --url (default: OPENAI_API_KEY, when set; never written: the bundle holds its shape).",
                           show_default=False)] = None,
    add: Annotated[Optional[list[str]], typer.Option("--add", help="Your own file: a client traceback, a HAR, curl -v "
                   "output, a mitmproxy capture. Repeatable.", show_default=False)] = None,
    tail: Annotated[int, typer.Option(help="Lines of each log kept (the last ones).", min=1)] = 5000,
    timeout: Annotated[float, typer.Option(help="Seconds each command may take before it is stopped.", min=1)] = 30.0,
    no_gpu: Annotated[bool, typer.Option("--no-gpu", help="Do not run nvidia-smi.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Gather the evidence where the server runs into one zip for `emblens analyze`.

    Logs, the server's command line, GPU state (nvidia-smi), package versions, the endpoint's
    answers and your own files, with a manifest.json saying what was collected, from where, and
    what was not and why. Keys, tokens and passwords are masked before anything is written. With
    no --docker, --k8s, --log or --journal, it looks for running vLLM, SGLang and TEI processes.

    Example:  emblens collect --docker vllm --url http://127.0.0.1:8000/v1 -o bundle.zip
    """
    from emblens.frontends.collect import Plan
    from emblens.frontends.collect import collect as run

    if output.suffix.lower() != ".zip":
        _fail(f"{output}: the bundle is a zip: name it something.zip")
    key, key_var, note = _key(api_key_env)
    if note:
        typer.echo(f"emblens: note: {note}", err=True)
    plan = Plan(docker=docker or [], k8s=k8s or [], namespace=namespace, container=container, logs=log or [],
                journal=journal or [], url=url, api_key=key, key_var=key_var if key else None, add=add or [], tail=tail,
                timeout_s=timeout, gpu=not no_gpu)

    def say(line: str) -> None:
        if not quiet:
            from emblens.events.redact import printable

            typer.echo(f"emblens: {printable(line)}", err=True)

    try:
        manifest = run(plan, output, say)
    except EmblensError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"{output}: cannot write: {e.strerror or e}")
    n, m = len(manifest["collected"]), len(manifest["not_collected"])
    typer.echo(f"emblens: wrote {output}: {n} file(s) collected, {m} thing(s) not collected (see manifest.json); "
               f"next: emblens analyze {output}", err=True)


DEFAULT_KEY_VAR = "OPENAI_API_KEY"     # where the openai SDKs and most clients read the key from


def _key(var: str | None) -> tuple[str | None, str | None, str | None]:
    """The key from the variable --api-key-env names (else OPENAI_API_KEY, as a client would read
    it), the variable it came from, and a note when a named variable is unset or empty."""
    if not var:
        value = (os.environ.get(DEFAULT_KEY_VAR) or "").strip()
        return (value, DEFAULT_KEY_VAR, None) if value else (None, None, None)
    value = os.environ.get(var)
    if value is None:
        return None, var, f"{var} is not set: going on without a key"
    if not value.strip():
        return None, var, f"{var} is empty: going on without a key"
    return value.strip(), var, None


@app.command()
def probe(
    url: Annotated[str, typer.Argument(help="The server's base URL, as the client uses it: http://HOST:PORT/v1.", show_default=False)],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="The model name your client sends (checked against "
                     "the served names). Default: the first served name.", show_default=False)] = None,
    api_key_env: Annotated[Optional[str], typer.Option("--api-key-env", help="The environment variable holding the key "
                           "your client uses (default: OPENAI_API_KEY, when set). Never printed or written: reports show "
                           "its shape.",
                           show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Also keep the bundle (probe.har, probe.json) as this zip.",
                   show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be sent, send nothing.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds each request may take, connect to last byte; none is sent "
                       "after one that ran out of time.", min=0.1, max=60)] = 3.0,
    format: FormatOpt = None,
    output: OutputOpt = None,
    fail_on: Annotated[ProbeFailOn, typer.Option("--fail-on", help="Exit 1 when a check or finding of this severity or "
                                                 "worse exists: error (a FAIL check), warning (a WARN check too), info; "
                                                 "never: exit 0 whatever the checks say.")] = ProbeFailOn.error,
    width: WidthOpt = 80,
    quiet: QuietOpt = False,
) -> None:
    """Check a running OpenAI-compatible endpoint the way the troubleshooting guides do.

    Name, TCP, TLS and proxy settings; /health; /v1/models; whether a key is required and whether
    yours works; the model name (case, did-you-mean); the base URL with and without /v1; one tiny
    embeddings or chat call (vector size, normalisation, `dimensions`); latency. At most 20 small
    requests, none with your data. Every exchange is recorded and analysed by the same rules, so
    the report names the root cause, with a section listing each check as pass / warn / fail.

    Example:  emblens probe http://127.0.0.1:8000/v1 --model Qwen3-Embedding-4B --api-key-env OPENAI_API_KEY
    """
    import io
    import json
    import re
    import zipfile

    from emblens import diagnose
    from emblens.events.redact import printable
    from emblens.frontends.probe import key_mask, key_problem, plan, run_probe
    from emblens.ingest.bundle import Member
    from emblens.outfiles import replacing
    from emblens.run import Run

    targets = [(o, _format_of(o, format)) for o in (output or ["-"])]
    if out is not None and out.suffix.lower() != ".zip":
        _fail(f"{out}: the bundle is a zip: name it something.zip")
    if api_key_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
        # not shown: what was given may be the key itself rather than the name of its variable
        _fail("--api-key-env takes the name of the variable that holds the key (such as OPENAI_API_KEY), "
              "not the key itself")
    key, key_var, note = _key(api_key_env)
    if key is not None and api_key_env is None and not quiet:
        typer.echo(f"emblens: note: the key is read from {key_var} (as a client would); --api-key-env names another "
                   "variable", err=True)
    # one run: its redactor masks the exchanges as they are recorded, the checks as they are
    # printed, and the analysis of the HAR, and it knows the key before any of them
    run = Run()
    mask = key_mask(run.redactor, key)
    if key is not None and (problem := key_problem(key)):
        _fail(f"the key in {key_var} ({len(key)} characters) holds {problem}: no HTTP header can carry it. "
              "Is the variable two values, or a pasted file?")
    if dry_run:
        try:
            lines = plan(url, model, key is not None)
        except ValueError as e:
            _fail(printable(mask(str(e))))
        typer.echo("emblens probe would send (nothing is sent with --dry-run):")
        for line in lines:
            typer.echo(f"  {printable(mask(line))}")
        return
    if note:
        typer.echo(f"emblens: note: {note}", err=True)

    def said(c) -> None:
        if not quiet:
            typer.echo(f"emblens: {c.outcome.upper():<4} {c.id}: {printable(c.detail)[:160]}", err=True)

    try:
        result = run_probe(url, model=model, api_key=key, key_var=key_var if key else api_key_env, timeout_s=timeout, on_check=said,
                           mask=mask)
    except ValueError as e:
        _fail(printable(mask(str(e))))
    files = {"probe.har": json.dumps(result.har(), indent=1).encode("utf-8"),
             "probe.json": json.dumps(result.to_dict(), indent=2).encode("utf-8")}
    if out is not None:
        try:
            with replacing(out, private=True) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as z:
                for name, data in files.items():
                    z.writestr(name, data)
        except EmblensError as e:
            _fail(str(e))
        typer.echo(f"emblens: wrote {out} ({len(result.entries)} exchanges; emblens analyze {out} reads it again)", err=True)

    # the exchanges are read in memory, named as the bundle's members (probe.zip when none is kept)
    bundle = str(out) if out is not None else "probe.zip"
    members = [Member(f"{bundle}:{name}", lambda data=data: io.BytesIO(data), len(data)) for name, data in files.items()]
    level = None if fail_on == ProbeFailOn.never else Severity(fail_on.value)
    try:
        _emit(diagnose.run(members, run), targets, width, level)
    except EmblensError as e:
        _fail(str(e))
    # a FAIL check is an error, a WARN check a warning: a script or CI job sees the endpoint is not right
    worst = {"fail": "error", "warn": "warning"}
    if level is not None and any(c.outcome in worst and SEVERITIES.index(worst[c.outcome]) <= SEVERITIES.index(level.value)
                                 for c in result.checks):
        raise typer.Exit(1)


def _write_zip(path: Path, files: dict[str, bytes]) -> None:
    """Write a zip of `files` (name -> bytes) atomically: a file of that name is replaced only once
    the new one is whole."""
    import tempfile
    import zipfile

    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as z:
                for name, data in files.items():
                    z.writestr(name, data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        _fail(f"{path}: cannot write: {e.strerror or e}")


@rules_app.command("list")
def rules_list(rules: RulesOpt = None) -> None:
    """List the rules: id, severity and title."""
    from emblens.rules.loader import load_rules

    try:
        ruleset = load_rules(rules or [])
    except EmblensError as e:
        _fail(str(e))
    templates = ruleset.messages.ids()
    for r in sorted(ruleset.rules, key=lambda r: r.id):
        extra = [f"{len(r.causes)} causes"] if r.causes else []
        if templates.get(r.id):
            extra.append(f"{templates[r.id]} upstream messages")
        typer.echo(f"{r.id:<26} {r.severity:<8} {r.title}" + (f"  ({', '.join(extra)})" if extra else ""))
    projects = len({m.project for m in ruleset.messages.messages})
    typer.echo(f"\n{len(ruleset.messages)} upstream messages from {projects} projects ({templates.get('none', 0)} that name no "
               "failure); `emblens rules show ID` lists an id's")
    typer.echo(f"{len(ruleset.cues)} cues for {len(ruleset.cues.ids())} ids: how the field words a cause, read where "
               "no rule or message spoke (rules/data/cues.yaml)")


@rules_app.command("show")
def rules_show(rule_id: Annotated[str, typer.Argument(help="A rule id, e.g. model.not_found.", autocompletion=_rule_ids)], rules: RulesOpt = None) -> None:
    """Show a rule as written: each of its files (the rule, its signals and causes), match included."""
    from emblens.events.redact import printable
    from emblens.rules.loader import UPSTREAM_SIGNAL, load_rules

    try:
        ruleset = load_rules(rules or [])
    except EmblensError as e:
        _fail(str(e))
    r = ruleset.get(rule_id)
    if r is None:
        from emblens.rules.spec import suggest

        _fail(f"no rule {rule_id!r}{suggest(rule_id, [x.id for x in ruleset.rules])}; `emblens rules list` shows the ids")
    typer.echo(f"{r.id}  ({r.severity})  {r.title}")
    for part in r.parts:
        if part.name == UPSTREAM_SIGNAL:     # the messages whose words evidence this id, wherever they stand
            mine = [m for m in ruleset.messages.messages if m.id == r.id]
            typer.echo(f"\n# signal {part.name}: {len(mine)} messages of the software in the path (rules/data/messages)\n")
            for m in mine:
                typer.echo(printable(f"{m.project[:24]:<24} {m.template}    [{m.source}, {m.versions}]"))
            continue
        what = "rule" if part.kind == "head" else f"{part.kind} {part.name}" + (f" (order {part.order})" if part.kind == "cause" else "")
        typer.echo(f"\n# {what}: {part.path}\n")
        try:
            typer.echo(printable(Path(part.path).read_text(encoding="utf-8")).rstrip())
        except OSError as e:
            typer.echo(f"(cannot read: {e.strerror})")


DirArg = Annotated[Optional[Path], typer.Argument(help="Folder of rule files (default: the built-in rules).", show_default=False)]


@rules_app.command("lint")
def rules_lint(directory: DirArg = None) -> None:
    """Check every rule file of a folder and report every problem as file:line (exit 2 on any):
    keys, match nodes, columns and their values, operators, facts, regexes, templates, explains,
    and the fixtures beside each file. A misspelt name gets a suggestion."""
    from emblens.rules import builtin_dir
    from emblens.rules.lint import lint

    folder = directory or builtin_dir()
    if not folder.is_dir():
        _fail(f"{folder}: not a folder")
    report = lint(folder)
    for n in report.notes:
        typer.echo(f"note: {n}", err=True)
    for e in report.errors:
        typer.echo(e, err=True)
    if report.errors:
        typer.echo(f"{len(report.errors)} problem(s) in {folder}", err=True)
        raise typer.Exit(2)
    typer.echo(f"{folder}: rules are well-formed")


@rules_app.command("test")
def rules_test(directory: DirArg = None,
               quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print failures and the total only.")] = False,
               format: Annotated[Enum("TestFormat", {"text": "text", "json": "json"}, type=str), typer.Option(
                   "--format", "-f", help="text, or json (per rule id: tp, fp, fn and each fixture; the cues; totals) for "
                   "tools.")] = "text") -> None:
    """Run each rule file's fixtures: positive ones must make it the root cause (worded by the
    cause, for a cause file) and meet their .expect.yaml; negative ones must not. A positive one that
    fails says why (the first condition that failed and a near-miss line). Exit 1 on a failure."""
    from emblens.fixtures import run_fixtures
    from emblens.rules import builtin_dir
    from emblens.rules.loader import load_rules

    as_json = format == "json"
    folder = directory or builtin_dir()
    if not folder.is_dir():
        _fail(f"{folder}: not a folder")
    try:
        user = [folder] if directory is not None else []
        ruleset = load_rules(user)
    except EmblensError as e:
        _fail(str(e))
    passed = failed = 0
    results = []
    try:
        for r in run_fixtures(ruleset, jobs=min(2, os.cpu_count() or 1), dirs=user, under=folder):
            passed, failed = passed + r.ok, failed + (not r.ok)
            results.append(r)
            if not as_json and (not quiet or not r.ok):
                mark = "ok  " if r.ok else "FAIL"
                typer.echo(f"{mark} {r.rule:<26} {Path(r.fixture).name} ({r.expect})" + ("" if r.ok else f": {r.detail}"))
    except EmblensError as e:
        _fail(str(e))
    from emblens.events.redact import printable
    from emblens.knowledge.cues import check

    # the cues' own examples and counters (rules/data/cues.yaml): each one a test
    # a user's folder: its own cues only (the built-in ones are the built-in folder's)
    mine = type(ruleset.cues)(tuple(c for c in ruleset.cues.cues if Path(c.where).resolve().is_relative_to(folder.resolve())))
    problems = check(mine)
    cases = sum(len(c.examples) + len(c.counters) for c in mine.cues)
    passed, failed = passed + cases - len(problems), failed + len(problems)
    if not as_json:
        for problem in problems:
            typer.echo(f"FAIL cue {printable(problem)}")
        typer.echo(f"{passed} passed, {failed} failed")
    else:
        import json

        def name(path: str) -> str:
            p = Path(path)
            return p.resolve().relative_to(folder.resolve()).as_posix() if p.resolve().is_relative_to(folder.resolve()) else p.name

        counts = ("tp", "fp", "fn", "tn", "missing")
        rules_out: dict[str, dict] = {}
        for r in results:
            entry = rules_out.setdefault(r.rule, {**dict.fromkeys(counts, 0), "fixtures": []})
            # tp: a positive fixture passed, fn: one failed; fp: a negative one the rule fired on, tn: one it did not;
            # missing: no fixture of that kind beside a rule file
            key = "missing" if r.fixture == r.part else ("tp" if r.ok else "fn") if r.expect == "fires" else ("tn" if r.ok else "fp")
            entry[key] += 1
            entry["fixtures"].append({"fixture": name(r.fixture), "expect": r.expect, "ok": r.ok, "detail": printable(r.detail)})
        cue_cases = []
        for c in mine.cues:
            for kind, texts in (("example", c.examples), ("counter", c.counters)):
                for text in texts:
                    said = (f"{c.where}: cue {c.id}: example {text!r} gives " if kind == "example"
                            else f"{c.where}: cue {c.id}: counter {text!r} matches")
                    problem = next((p for p in problems if p.startswith(said)), None)
                    cue_cases.append({"cue": c.id, "case": kind, "text": printable(text), "ok": problem is None,
                                      "detail": printable(problem) if problem else ""})
        cues_out = {"tp": sum(c["ok"] for c in cue_cases if c["case"] == "example"),
                    "fn": sum(not c["ok"] for c in cue_cases if c["case"] == "example"),
                    "fp": sum(not c["ok"] for c in cue_cases if c["case"] == "counter"),
                    "tn": sum(c["ok"] for c in cue_cases if c["case"] == "counter"), "cases": cue_cases}
        totals = {"passed": passed, "failed": failed,
                  **{k: sum(e[k] for e in rules_out.values()) + cues_out.get(k, 0) for k in counts}}
        _write(json.dumps({"rules": dict(sorted(rules_out.items())), "cues": cues_out, "totals": totals}, indent=2) + "\n", None)
    if failed:
        raise typer.Exit(1)


@rules_app.command("schema")
def rules_schema(output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write it to this file.")] = None) -> None:
    """Print the JSON Schema of rule files (the same as rules/schema.json), for editors."""
    from emblens.rules.schemagen import render

    _write(render(), output)


@rules_app.command("facts")
def rules_facts() -> None:
    """List the facts rules may test (`facts:`) or quote (`$name`, `{{ name }}`), with what each holds."""
    from emblens.rules.spec import FACTS, VERSION_SUFFIX

    for name, f in FACTS.items():
        typer.echo(f"{name:<26} {f.type:<7} {f.doc}")
    typer.echo(f"{'<software>' + VERSION_SUFFIX:<26} {'text':<7} a version seen (vllm_version, openai_version, nvidia_driver_version, ...)")


class FleetFormat(str, Enum):
    text = "text"
    markdown = "markdown"
    json = "json"
    html = "html"


class FleetEngine(str, Enum):
    pool = "pool"
    serial = "serial"
    ray = "ray"


@app.command()
def fleet(
    sources: Annotated[list[str], typer.Argument(
        help="Where the replicas are: a folder whose entries (sub-folders or bundles) are the replicas, a bundle or "
        "folder that is one, a glob of them ('logs/pod-*'), or an object-storage prefix (s3://bucket/fleet/, with "
        "pip install 'emblens\\[s3]').", show_default=False)],
    replica: Annotated[Optional[str], typer.Option(
        "--replica", help="How a folder's files group into replicas: components naming a replica, then ** "
        "('{ns}/{pod}/**', 'node-*/{pod}/**', 'vllm-{pod}.log'). Default: each entry of the folder is one.",
        show_default=False)] = None,
    engine: Annotated[FleetEngine, typer.Option("--engine", help="pool: local worker processes; serial: this process; "
                                                "ray: a Ray cluster (pip install 'emblens\\[ray]').")] = FleetEngine.pool,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", help="Worker processes (pool), or CPUs of a local Ray. "
                                                "Default: the cores.", min=1, show_default=False)] = None,
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster to run on (auto, ray://host:10001). "
                                                   "Default: start Ray here.", show_default=False)] = None,
    endpoint_url: Annotated[Optional[str], typer.Option("--endpoint-url", help="The S3-compatible endpoint of s3:// "
                                                        "sources (MinIO: http://minio:9000). Credentials: the usual AWS "
                                                        "variables and files.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the tables here as Parquet: findings, replicas, "
                                                "failing, unexplained (README: Fleet mode).", show_default=False)] = None,
    events: Annotated[bool, typer.Option("--events", help="Also write each replica's event table under --out/events.")] = False,
    replica_timeout: Annotated[float, typer.Option("--replica-timeout", help="Seconds a replica may take before it is "
                                                   "reported as timed out and skipped.", min=1)] = 600.0,
    format: Annotated[Optional[FleetFormat], typer.Option("--format", "-f", help="text for the terminal, markdown for a "
                                                          "postmortem, json for tools, html (one file, with the heat "
                                                          "map). Default: by -o's extension, text on stdout.",
                                                          show_default=False)] = None,
    output: OutputOpt = None,
    fail_on: FailOnOpt = None,
    rules: RulesOpt = None,
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    redact: RedactOpt = None,
    year: YearOpt = None,
    tz: TzOpt = None,
    width: WidthOpt = 80,
    quiet: QuietOpt = False,
    config: ConfigOpt = None,
    no_config: NoConfigOpt = False,
) -> None:
    """Analyse every replica of a fleet with the same rules, and report the root causes across it.

    Each replica (a folder or a bundle) is analysed on its own, as `emblens analyze` would, by
    worker processes; the report ranks the root causes by the replicas they affect and the
    requests that failed, and lists the replicas with errors no rule explains and those that could
    not be read. With --out, the rows are also written as Parquet tables for DuckDB, polars or Spark.

    Example:  emblens fleet logs/ --out fleet-out -o fleet.html
    """
    import shutil
    import tempfile
    import time as _time

    from emblens.frontends.fleet import engines, report
    from emblens.frontends.fleet.replicas import ReplicaError, discover
    from emblens.frontends.fleet.tables import Tables
    from emblens.frontends.fleet.task import Conf

    outputs = output or ["-"]
    targets = [(o, _format_of(o, Format(format.value) if format else None)) for o in outputs]
    for target, fmt in targets:
        if fmt not in (Format.text, Format.markdown, Format.json, Format.html):
            _fail(f"{target}: the fleet report is text, markdown, json or html, not {fmt.value}")
    if events and out is None:
        _fail("--events writes each replica's event table under --out DIR: say where")
    try:
        settings, fail_on = _analysis_settings(config, no_config, quiet, fail_on, rules, select, ignore, since, until,
                                               redact, year, tz)
        if settings.rule_dirs:       # a bad rule file: one line now, not one per replica
            from emblens.run import Run

            _ = Run(settings).ruleset
    except EmblensError as e:
        _fail(str(e))
    try:
        storage = {"endpoint_url": endpoint_url} if endpoint_url else None
        replicas = discover(sources, replica, storage)
    except ReplicaError as e:
        _fail(str(e))
    if not any(r.files for r in replicas):
        _fail("no replica found in " + ", ".join(sources[:3]) + (" (check --replica)" if replica else " (no files)"))
    folder = Path(tempfile.mkdtemp(prefix="emblens-fleet-")) if out is None else out
    try:
        if out is not None:
            try:
                out.mkdir(parents=True, exist_ok=True)
                if events:
                    (out / "events").mkdir(exist_ok=True)
            except OSError as e:
                _fail(f"{out}: cannot write there: {e.strerror or e}")
        tables = Tables(folder)
        conf = Conf(settings=settings, timeout_s=replica_timeout, events_dir=str(out / "events") if events else None,
                    storage=storage)
        start = _time.perf_counter()
        with _FleetProgress(quiet, len(replicas)) as progress:
            def done(result: dict) -> None:
                tables.add(result)
                progress.advance(result["replica"].get("status") != "ok")
            interrupted = False
            try:
                engines.run(replicas, conf, done, engine=engine.value, jobs=jobs, address=address)
            except KeyboardInterrupt:
                interrupted = True
            except RuntimeError as e:
                _fail(str(e))
        paths = tables.close()
        doc = report.summary(paths, seconds=round(_time.perf_counter() - start, 2), engine=engine.value)
        if interrupted:
            doc["interrupted"] = f"stopped (Ctrl-C) after {tables.replicas:,} of {len(replicas):,} replicas"
            typer.echo(f"emblens: {doc['interrupted']}; the report covers those", err=True)
        for target, fmt in targets:
            _write(report.render(doc, fmt.value, width=width), target, fmt.value)
        if out is not None:
            typer.echo(f"emblens: wrote {', '.join(str(p) for p in paths.values())}", err=True)
        if not interrupted and doc["replicas"]["analysed"] == 0:     # a CI job must not go green on nothing
            _fail(f"no replica could be analysed (all {doc['replicas']['total']:,} are listed in the report)")
        if fail_on is not None:
            import polars as pl

            worst = SEVERITIES.index(fail_on.value)
            severities = pl.read_parquet(paths["findings"], columns=["severity"])["severity"].unique().to_list()
            if any(s in SEVERITIES and SEVERITIES.index(s) <= worst for s in severities):
                raise typer.Exit(1)
        if interrupted:
            raise typer.Exit(130)
    except EmblensError as e:
        _fail(str(e))
    finally:
        if out is None:
            shutil.rmtree(folder, ignore_errors=True)
        else:       # the parts of a run that failed half-way (a finished run has joined and removed them)
            shutil.rmtree(folder / ".parts", ignore_errors=True)


class _FleetProgress:
    """Replicas done and failed, on stderr while a fleet runs; silent when stderr is not a terminal."""

    def __init__(self, quiet: bool, total: int) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.total, self.done, self.failed = total, 0, 0
        self._progress = self._task = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("replicas", total=self.total)
        return self

    def advance(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        if self._progress is not None:
            self._progress.update(self._task, advance=1,
                                  description=f"replicas ({self.failed:,} not analysed)" if self.failed else "replicas")

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()


@app.command("addon-path")
def addon_path() -> None:
    """Print the path of the mitmproxy addon, for `mitmdump -s "$(emblens addon-path)"`.

    The addon runs emblens's rules on live traffic: it prints each finding once when it first
    appears, never changes a request or response, and writes emblens-report.md and
    emblens-report.json on exit (mitmproxy options emblens_report, emblens_json, emblens_save,
    emblens_save_raw, emblens_rules, emblens_interval, emblens_window; set them with --set name=value).
    Streamed responses (server-sent events, chunked bodies) pass through as streams. Bind the
    proxy to 127.0.0.1 (--listen-host) unless others must reach it."""
    from emblens.frontends.live import mitm_addon

    typer.echo(str(Path(mitm_addon.__file__).resolve()))


# mitmdump, with SIGINT ignored while Python imports mitmproxy (a Ctrl-C there was a KeyboardInterrupt
# traceback): mitmproxy's loop installs its own handler for SIGINT and SIGTERM once it runs
_MITMDUMP_QUIET_START = ("import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); sys.argv[0] = 'mitmdump'; "
                         "from mitmproxy.tools.main import mitmdump; sys.exit(mitmdump())")


def _mitmdump() -> str | None:
    import shutil

    here = Path(sys.executable).parent / "mitmdump"
    return str(here) if here.exists() else shutil.which("mitmdump")


@app.command()
def live(
    upstream: Annotated[str, typer.Option("--upstream", "-u", help="The server to watch, e.g. http://127.0.0.1:8000.",
                                          show_default=False)],
    port: Annotated[int, typer.Option("--port", "-p", help="Port the proxy listens on; point your client's base_url at it.")] = 8001,
    listen_host: Annotated[str, typer.Option("--listen-host", help="Address the proxy listens on.")] = "127.0.0.1",
    report: Annotated[Path, typer.Option("--report", help="Markdown report written on exit.")] = Path("emblens-report.md"),
    json_report: Annotated[Path, typer.Option("--json", help="JSON report written on exit.")] = Path("emblens-report.json"),
    save: Annotated[Optional[Path], typer.Option("--save", help="Also save the flows to this file (feed it to `emblens analyze` "
                                                 "later); written 0600, with credentials masked.", show_default=False)] = None,
    save_raw: Annotated[bool, typer.Option("--save-raw", help="With --save: keep bearer tokens, API keys, cookies and "
                                           "query keys as sent (the file then holds secrets).")] = False,
    rules: RulesOpt = None,
) -> None:
    """Run a reverse proxy in front of a server and report failures as they happen.

    Starts mitmdump with the emblens addon: your client talks to http://LISTEN_HOST:PORT instead of
    the server, traffic passes through unchanged, each new finding is printed once, and on Ctrl-C,
    SIGTERM or a closed terminal the reports are written from every exchange seen (exit status 0).

    Example:  emblens live --upstream http://127.0.0.1:8000 --port 8001 --save flows.mitm
    """
    import subprocess

    from emblens.frontends.live import mitm_addon

    if not upstream.startswith(("http://", "https://")):
        _fail(f"--upstream must be a URL such as http://127.0.0.1:8000, not {upstream!r}")
    exe = _mitmdump()
    if exe is None:
        _fail("mitmdump not found: install mitmproxy in this environment (pip install mitmproxy)")
    import socket

    try:   # a busy port is our one-line error and exit 2, not mitmdump's exit 1 and its own hint
        with socket.socket(socket.AF_INET6 if ":" in listen_host else socket.AF_INET) as probe:
            probe.bind((listen_host, port))
    except OSError as e:
        _fail(f"cannot listen on {listen_host}:{port} ({e.strerror}): choose another port with --port")
    cmd = [exe, "--mode", f"reverse:{upstream}", "--listen-host", listen_host, "-p", str(port),
           "-s", str(Path(mitm_addon.__file__).resolve()), "--set", "flow_detail=0", "--set", "termlog_verbosity=warn",
           "--set", f"emblens_report={report}", "--set", f"emblens_json={json_report}"]
    if save_raw and save is None:
        _fail("--save-raw needs --save FILE")
    # the files are written when the proxy stops: a folder that is not there is said now, not then
    for option, path in (("--report", report), ("--json", json_report), ("--save", save)):
        if path is not None and str(path) not in ("", ".") and not path.expanduser().parent.is_dir():
            _fail(f"{option} {path}: the folder {path.expanduser().parent} does not exist")
    if save is not None:
        cmd += ["--set", f"emblens_save={save}"] + (["--set", "emblens_save_raw=true"] if save_raw else [])
    if rules:
        cmd += ["--set", "emblens_rules=" + ",".join(str(r) for r in rules)]
    typer.echo(f"emblens: proxy on http://{listen_host}:{port} -> {upstream}; Ctrl-C writes {report} and {json_report}",
               err=True)
    import signal

    # Ctrl-C, SIGTERM (a service manager) and a closed terminal all become one SIGINT to mitmdump,
    # which stops cleanly: the addon reads what is queued, writes the reports and puts the flow file
    # in place, then prints one line. This process only waits for that; a second Ctrl-C does not
    # cut it short (the reports would be lost), it is passed on like the first.
    proc: subprocess.Popen | None = None
    asked: list[int] = []

    def listening() -> bool:
        """Whether the proxy holds its port: tried by binding it, never by connecting (a connection
        the proxy must cancel on its way out is a traceback of its own)."""
        try:
            with socket.socket(socket.AF_INET6 if ":" in listen_host else socket.AF_INET) as probe:
                probe.bind((listen_host, port))
            return False
        except OSError:
            return True

    early: list[bool] = []

    def stop(signum, _frame) -> None:
        asked.append(signum)
        if proc is not None and proc.poll() is None:
            # before the proxy listens it has seen no traffic and Python is still importing mitmproxy:
            # a SIGINT there is a KeyboardInterrupt traceback; SIGTERM ends it quietly (nothing to write)
            if not early and not listening():
                early.append(True)
                proc.send_signal(signal.SIGTERM)
            elif not early:
                proc.send_signal(signal.SIGINT)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    import importlib.util

    if importlib.util.find_spec("mitmproxy") is not None:
        # mitmdump as this Python runs it, deaf to a terminal's Ctrl-C until its loop takes SIGINT over (the
        # same process group: if this process dies, the terminal's signals still reach the proxy)
        cmd = [sys.executable, "-c", _MITMDUMP_QUIET_START, *cmd[1:]]
    proc = subprocess.Popen(cmd)
    if asked:                              # a signal came while it was starting
        early.append(True)
        proc.send_signal(signal.SIGTERM)
    code = proc.wait()
    if early:
        typer.echo("emblens: stopped before the proxy was listening: no traffic was seen and no report was written",
                   err=True)
        raise typer.Exit(130)
    if code < 0:                           # killed outright (SIGKILL): it could not finish
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        typer.echo(f"emblens: error: mitmdump was killed ({name}) before it could finish: the reports and "
                   "the flow file may be missing or hold less than it saw", err=True)
        raise typer.Exit(128 - code)
    raise typer.Exit(0 if code in (0, 130) else code)


def main() -> None:
    # click's exceptions, wherever this typer keeps them (recent typer releases carry their own click)
    cx = sys.modules[typer.BadParameter.__module__]
    try:
        code = app(standalone_mode=False, prog_name="emblens")   # also under `python -m emblens` (completion reads it)
    except cx.UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":    # `emblens` or `emblens rules` alone: the help
            help_text = e.format_message()
            if help_text.strip():                       # (typer's rich help has printed itself already)
                typer.echo(help_text)
            code = 0
        else:    # a bad option or value: one line and exit 2, as the README promises
            hint = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
            message = ' '.join(e.format_message().replace('Value error, ', '').split())
            typer.echo(f"emblens: error: {message}{hint}", err=True)
            code = 2
    except typer.Abort:
        typer.echo("emblens: interrupted", err=True)
        code = 130
    except KeyboardInterrupt:
        typer.echo("emblens: interrupted", err=True)
        code = 130
    except EmblensError as e:
        typer.echo(f"emblens: error: {e}", err=True)
        code = 2
    _leave(code if isinstance(code, int) else 0)


def _leave(code: int) -> None:
    """Exit without the interpreter's teardown. Freeing every module's objects one by one, polars'
    among them, takes 0.1-0.15 s, a tenth of a run on a small input, and by now there is nothing
    left to do: reports, bundles and the rule cache are written and closed, temporary folders
    removed, threads joined. Only the standard streams are flushed; a reader that has gone away
    (`| head`) is no error."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass
    os._exit(code)
