"""YAML from strangers (rule folders, their data and fixture expectations): the safe loader,
without aliases."""

from __future__ import annotations

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def refuse_aliases(text: str) -> None:
    """Raise a YAML error at the first alias (`*name`): an alias of an alias of a list is a few
    hundred bytes that expand to billions of items wherever the value is walked."""
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in rule files; "
                                              "write the value out", event.start_mark)


def safe_load(text: str) -> object:
    """yaml.safe_load without aliases."""
    refuse_aliases(text)
    return yaml.load(text, Loader=_LOADER)
