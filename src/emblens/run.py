"""One analysis's settings and its state: nothing an analysis changes lives anywhere else, so two
analyses in one process (threads, a fleet's workers, the live addon beside an `analyze`) give
exactly what each gives alone.

    run = Run(Settings(clock=Clock(tz="Europe/Berlin")))
    analysis = diagnose.run(["bundle.zip"], run)
    run.notices                      # what the analysis wants its reader to know

State held here, and only here: the masking of this run (the user's patterns and the tally of what
was masked, `redactor`), the time the backtracking regex engine may still spend (`budget`), and
the notices gathered along the way. The rule set is loaded once for the run from its settings
(or handed in, already loaded: rule sets are immutable and shared between runs).
"""

from __future__ import annotations

from emblens.events.redact import Redactor
from emblens.patterns.backtracking import RegexBudget
from emblens.settings import Settings


class Run:
    """The settings of one analysis and everything it changes while it runs."""

    def __init__(self, settings: Settings | None = None, *, ruleset=None, redactor: Redactor | None = None) -> None:
        self.settings = settings or Settings()
        self.redactor = redactor if redactor is not None else Redactor.from_file(
            str(self.settings.redact) if self.settings.redact else None)
        self.budget = RegexBudget()
        self.notices: list[str] = []
        self._given = ruleset
        self._ruleset = None

    @property
    def ruleset(self):
        """The rules this run evaluates: the rule set handed in, or loaded from the settings'
        folders on first use; narrowed to the selection (`--select`, `--ignore`)."""
        if self._ruleset is None:
            rules = self._given
            if rules is None:
                from emblens.rules.loader import load_rules

                rules = load_rules(self.settings.rule_dirs, include_builtin=self.settings.include_builtin)
            chosen = self.settings.selection
            self._ruleset = rules.select(chosen.select, chosen.ignore) if chosen.select or chosen.ignore else rules
        return self._ruleset
