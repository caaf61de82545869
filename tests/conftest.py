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
