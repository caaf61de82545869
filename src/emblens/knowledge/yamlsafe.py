"""YAML from strangers (rule folders, their data and fixture expectations): the safe loader,
without aliases. PyYAML is imported on first use: a run whose rules come from the rule cache
reads no YAML (the import costs a start-up some 15 ms)."""

from __future__ import annotations


def loader_class():
    """libyaml's safe loader where PyYAML was built with it, else the pure-Python one."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


MAX_DEPTH = 64   # nesting of lists and mappings; rule files use a dozen


def refuse_aliases(text: str) -> None:
    """Raise a YAML error at the first alias (`*name`) or at nesting deeper than MAX_DEPTH, before
    anything is built: an alias of an alias of a list is a few hundred bytes that expand to
    billions of items, and libyaml's composer recurses in C, so deep nesting crashes the process
    rather than raising. The parser's event stream is read iteratively, so checking it is safe."""
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=loader_class()):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in rule files; "
                                              "write the value out", event.start_mark)
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                                  event.start_mark)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def safe_load(text: str) -> object:
    """yaml.safe_load without aliases."""
    import yaml

    refuse_aliases(text)
    return yaml.load(text, Loader=loader_class())


def load_file(path, max_bytes: int, limit: str, what: str) -> object:
    """One YAML data file of a rule folder, or a RuleError naming it: larger than `max_bytes`
    (`limit` says it: "4 MiB"), unreadable, or not YAML (`what`: "the cues", "the messages")."""
    from pathlib import Path

    import yaml

    from emblens.errors import RuleError

    p = Path(path)
    try:
        if p.stat().st_size > max_bytes:
            raise RuleError(f"{path}: larger than {limit}, not read")
        return safe_load(p.read_text(encoding="utf-8"))
    except RuleError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RuleError(f"{path}: cannot read {what} ({type(e).__name__}: {e})") from None
    except yaml.MarkedYAMLError as e:            # not YAML: say where, on one line
        mark = e.problem_mark or e.context_mark
        where = f" line {mark.line + 1}" if mark else ""
        raise RuleError(f"{path}:{where} {what} are not YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise RuleError(f"{path}: {what} are not YAML ({type(e).__name__})") from None
