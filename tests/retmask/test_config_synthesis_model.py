"""The synthesis model (cross-model synthesis): resolved like `model`, and refused where it makes no
sense, each time with one error naming what is wrong."""
import pytest

from retmask.config import ConfigError, ExperimentConfig, from_dict, load_config
from retmask.toy.recipe import ToyModelConfig, toy_recipe_hash
from retmask.strategies import STRATEGIES
from retmask.typed_yaml import read_yaml_mapping
from tests.conftest import REPO

CROSS = REPO / "configs" / "tiny-cross-model.yaml"


def test_without_a_synthesis_model_the_trained_model_synthesizes():
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    assert not cfg.cross_model and cfg.synthesis_source() is cfg.model


def test_the_toy_cross_model_config_resolves_both_toys():
    cfg = load_config(CROSS)
    assert cfg.cross_model and cfg.synthesis_source() is cfg.synthesis_model
    assert cfg.model.path.endswith(toy_recipe_hash(ToyModelConfig(seed=0)))
    assert cfg.synthesis_model.path.endswith(toy_recipe_hash(ToyModelConfig(seed=1)))


@pytest.mark.parametrize("strategy", [s.name for s in STRATEGIES.values() if s.rejected_from != "rejected_model"])
def test_strategies_whose_pairs_come_from_the_synthesis_model_accept_one(strategy):
    assert load_config(CROSS, [f"strategy={strategy}"]).strategy == strategy


def test_smaller_model_with_a_synthesis_model_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"synthesis_model.path: strategy smaller-model samples rejected responses "
                                          r"from rejected_model.*use one of retrieval-mask, .*win-lose-pair"):
        from_dict(ExperimentConfig, {"name": "x", "strategy": "smaller-model", "rejected_model": {"path": "/r"},
                                     "synthesis_model": {"path": "/s"}})


def test_the_trained_model_as_synthesis_model_is_refused():
    with pytest.raises(ConfigError, match=r"synthesis_model.path: .* is the trained model \(model.path\); leave "
                                          r"synthesis_model.path empty"):
        load_config(CROSS, ["synthesis_toy_model.seed=0"])


def test_a_toy_synthesis_model_needs_its_recipe_and_a_recipe_needs_the_toy_path():
    with pytest.raises(ConfigError, match="synthesis_model.path is 'toy' but there is no synthesis_toy_model"):
        load_config(CROSS, ["synthesis_toy_model=null"])
    with pytest.raises(ConfigError, match="synthesis_toy_model is set but synthesis_model.path is ''"):
        load_config(CROSS, ["synthesis_model.path=''"])


def test_a_toy_recipe_with_no_checkpoint_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("RETMASK_CACHE", str(tmp_path))
    recipe = ToyModelConfig(seed=7)
    with pytest.raises(ConfigError, match=f"synthesis_toy_model: no shipped or cached checkpoint of this recipe "
                                          f"\\(hash {toy_recipe_hash(recipe)}\\)"):
        load_config(CROSS, ["synthesis_toy_model.seed=7"])


def test_a_missing_synthesis_checkpoint_is_named():
    with pytest.raises(ConfigError, match="synthesis_model.path: /no/such/model is not a HF checkpoint directory"):
        load_config(CROSS, ["synthesis_model.path=/no/such/model", "synthesis_toy_model=null"])


def test_the_8b_cross_model_config_takes_llamas_synthesis_settings_and_qwens_training():
    def shipped(name: str) -> dict:
        return from_dict(ExperimentConfig, read_yaml_mapping(REPO / "configs" / f"{name}.yaml", "config")).to_dict()

    cross, llama, qwen = shipped("qwen3-8b-from-llama-3.1-8b"), shipped("llama-3.1-8b-instruct"), shipped("qwen3-8b")
    assert cross["synthesis_model"]["path"] and cross["synthesis_model"]["dtype"] == llama["model"]["dtype"]
    assert cross["model"]["dtype"] == qwen["model"]["dtype"]
    for section in ("detection", "selection", "synthesis"):
        assert cross[section] == llama[section], section
    # Llama's responses hold no reasoning: Llama's max_length fits them, whatever Qwen3 needs for its own.
    assert cross["train"] == {**qwen["train"], "max_length": llama["train"]["max_length"]}
    assert cross["evaluation"] == qwen["evaluation"]
