"""Shared test fixtures. Every test runs with its own RANKER_HOME, so nothing touches the user's database."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"          # a copy of shared/data: five days + arXiv fixtures
DAYS = DATA / "days"
FIXTURES = DATA / "fixtures"
SEED_DIGEST = DATA / "seed_digest_2025-06-23.md"
MODELS = REPO / "models"


@pytest.fixture(autouse=True)
def _ranker_home(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RANKER_DB", raising=False)
    monkeypatch.delenv("RANKER_OFFLINE", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    yield



@pytest.fixture(scope="session")
def embed_cache_db(tmp_path_factory):
    """A store shared by the slow prefilter/calibration tests, so each real day is embedded once a session."""
    return tmp_path_factory.mktemp("embed-cache") / "ranker.sqlite3"
