"""Every rule file's positive fixtures make its rule the root cause (worded by its cause, for a
cause file) and meet their expectations; its negative fixtures do not. `emblens rules test`
runs the same check (emblens.fixtures)."""

import pytest

from emblens.fixtures import fixtures_for, run_fixtures
from emblens.rules.loader import UPSTREAM_SIGNAL, load_rules

RULESET = load_rules(())
CATALOGUE_IDS_OF_ISSUE_2 = {
    "auth.empty_key", "auth.missing_key", "auth.invalid_key", "auth.forbidden", "model.not_found",
    "model.load_failed", "engine.startup_failed", "server.not_ready", "gpu.oom", "net.connection_refused",
    "net.timeout", "http.wrong_path", "http.rate_limited", "http.gateway_error", "http.payload_too_large",
    "embed.wrong_model_type", "embed.input_too_long", "embed.bad_input", "client.version_outdated",
}


def test_every_catalogue_id_of_this_release_has_a_rule():
    assert CATALOGUE_IDS_OF_ISSUE_2 <= {r.id for r in RULESET.rules}


@pytest.mark.parametrize("rule", RULESET.rules, ids=lambda r: r.id)
def test_rule_fixtures(rule):
    for part in rule.parts:
        if part.name == UPSTREAM_SIGNAL:      # the messages' own instances are its fixtures (test_upstream_messages)
            continue
        kinds = {expect for _, expect in fixtures_for(part.path)}
        assert kinds == {"fires", "silent"}, f"{part.path} needs positive and negative fixtures"
    results = list(run_fixtures(RULESET, [rule]))
    failures = [f"{r.fixture}: {r.detail}" for r in results if not r.ok]
    assert not failures, "\n".join(failures)
