"""Shared fixtures. The Time Machine comes from $RNNLAB_DATA (CI: ../shared/data)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Tests use tiny models: one intra-op thread is as fast and avoids oversubscribing
# the cores when several processes run at once.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
TIMEMACHINE_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"


def data_dir() -> Path | None:
    """Folder holding timemachine.txt: $RNNLAB_DATA, else ../shared/data beside the repo."""
    for candidate in (os.environ.get("RNNLAB_DATA"), str(REPO.parent / "shared" / "data")):
        if candidate and (Path(candidate) / "timemachine.txt").is_file():
            return Path(candidate).resolve()
    return None


@pytest.fixture(scope="session")
def timemachine_dir() -> Path:
    folder = data_dir()
    if folder is None:
        pytest.skip("timemachine.txt not found: set RNNLAB_DATA to the folder holding it (CI uses ../shared/data)")
    return folder


@pytest.fixture(scope="session")
def timemachine(timemachine_dir):
    from rnnlab.data.corpus import load_corpus
    return load_corpus("timemachine", data_dir=timemachine_dir, download=False)


@pytest.fixture(autouse=True)
def _no_network_cache(tmp_path_factory, monkeypatch):
    """Keep tests away from the user's cache and from the network."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
