import os

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach for a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def toy_model_dir() -> Path:
    """The trained toy model of the default recipe (trained once, then cached by recipe)."""
    from retmask.config import ToyModelConfig
    from retmask.toy.cache import ensure_toy_model

    return ensure_toy_model(ToyModelConfig())


@pytest.fixture(scope="session")
def toy_tokenizer():
    from retmask.toy.vocab import build_tokenizer

    return build_tokenizer()


from tests.gridengine_cluster import local_gridengine  # noqa: F401  (session fixture: a real single-host Grid Engine)
from tests.slurm_cluster import local_slurm  # noqa: F401  (session fixture: a real single-node SLURM)
