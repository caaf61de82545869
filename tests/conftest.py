from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(autouse=True, scope="session")
def _rule_cache(tmp_path_factory):
    """Rule sets are cached in a folder of this run, not the user's ~/.cache."""
    import os

    os.environ["EMBLENS_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.pop("EMBLENS_NO_CACHE", None)



@pytest.fixture
def mitm_context():
    """mitmproxy's test harness (`taddons.context`), its event loop closed after the test: the harness makes a loop
    when none runs and leaves it open, and its socket pair then warns when a later test's collection finds it."""
    from mitmproxy.test import taddons

    made = []

    def make(*addons, **options):
        made.append(taddons.context(*addons, **options))
        return made[-1]

    yield make
    for ctx in made:
        loop = ctx.master.event_loop
        if not loop.is_running() and not loop.is_closed():
            loop.close()


# The files that take longest (seconds of work on a two-core machine, `pytest --durations=0`, 2026-12-07), handed
# out first: `--dist loadfile` gives each worker a whole file in collection order, so a long file handed out last
# keeps one worker busy while the other has nothing left (the longest first, the short files fill in at the end).
LONGEST_FIRST = (
    "test_corpus_incoming.py",      # 295 s: every incoming case analysed
    "test_robustness.py",           # 105 s
    "test_fleet.py",                # 99 s: Ray and a local S3
    "test_secrets_by_meaning.py",   # 79 s
    "test_corpus.py",               # 78 s: every corpus case, three ways
    "test_html.py",                 # 65 s: Chromium
    "test_secrets.py",              # 50 s
    "test_rules_fixtures.py",       # 49 s
    "test_collect_probe.py",        # 43 s
    "test_live.py",                 # 39 s
)


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))    # stable: each file keeps its own order
