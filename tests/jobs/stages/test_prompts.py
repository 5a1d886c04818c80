"""The synthesis engines' context: by default what the chosen model serves (the toy's 256
positions), so `--set synthesis.backend=vllm` on the toy starts its engine; a context beyond a
sampling model's positions is one error before any job, naming the model and the most it takes."""
import json
import shutil

import pytest

from jobs.stages.prompts import check_context, check_inputs, engine_context
from retmask.config import ConfigError, load_config
from tests.conftest import REPO


def tiny(toy_model_dir, *overrides):
    return load_config(REPO / "configs" / "tiny.yaml", [f"model.path={toy_model_dir}", *overrides])


def test_the_engine_holds_what_the_model_serves_unless_told(toy_model_dir):
    positions = json.loads((toy_model_dir / "config.json").read_text())["max_position_embeddings"]
    cfg = tiny(toy_model_dir)
    assert cfg.synthesis.max_model_len == 0 and engine_context(cfg) == positions == 256
    assert cfg.synthesis.prompt_token_limit(engine_context(cfg)) == 256 - cfg.synthesis.sampling.max_new_tokens
    assert engine_context(tiny(toy_model_dir, "synthesis.max_model_len=200")) == 200
    check_context(cfg)


def test_a_context_beyond_a_models_positions_is_refused_before_any_job(toy_model_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"synthesis.max_model_len: 32768 tokens, but .* has 256 positions; give "
                                          r"at most 256"):
        check_inputs(tiny(toy_model_dir, "synthesis.max_model_len=32768"))
    # a smaller rejected model serving fewer positions than the chosen one
    small = tmp_path / "small"
    shutil.copytree(toy_model_dir, small)
    config = json.loads((small / "config.json").read_text())
    (small / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 128}))
    with pytest.raises(ConfigError, match=r"0, the chosen model's 256 positions, but .*small has 128 positions; "
                                          r"give at most 128 so that every sampling model serves every prompt"):
        check_context(tiny(toy_model_dir, "strategy=smaller-model", f"rejected_model.path={small}"))
    check_context(tiny(toy_model_dir, "strategy=smaller-model", f"rejected_model.path={small}",
                       "synthesis.max_model_len=128"))
