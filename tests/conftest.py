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

