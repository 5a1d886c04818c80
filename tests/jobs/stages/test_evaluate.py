"""Which untrained models evaluate_base scores, and which head group evaluate follows through training,
with and without a synthesis model."""
from jobs.stages.evaluate import SYNTHESIS_BASE, untrained_model_count, untrained_models, watched_heads
from retmask.config import ExperimentConfig, from_dict

SCORES = {"0-0": 0.9, "0-1": 0.7, "1-0": 0.2, "1-1": 0.05}


def config(**sections):
    return from_dict(ExperimentConfig, {"name": "x", "model": {"path": "/trained"}, "selection": {"tau": 0.5},
                                        "evaluation": {"random_control_draws": 1}, **sections})


def test_without_a_synthesis_model_every_untrained_model_is_the_trained_one():
    cfg = config()
    models = untrained_models(cfg, SCORES)
    assert [(name, model.path) for name, model, _ in models[:2]] == [("base", "/trained"), ("ablated", "/trained")]
    assert {model.path for _, model, _ in models} == {"/trained"} and len(models) == untrained_model_count(cfg)


def test_with_a_synthesis_model_its_ablation_and_controls_are_scored_on_it():
    cfg = config(synthesis_model={"path": "/synthesizer", "dtype": "bfloat16"})
    models = {name: (model, heads) for name, model, heads in untrained_models(cfg, SCORES)}
    assert len(models) == untrained_model_count(cfg) == 4
    assert models["base"][0] is cfg.model and models["base"][1] == []
    assert models[SYNTHESIS_BASE][0] is cfg.synthesis_model and models[SYNTHESIS_BASE][1] == []
    assert models["ablated"] == (cfg.synthesis_model, ["0-0", "0-1"])
    assert models["random_control_0"][0] is cfg.synthesis_model


def test_the_watched_heads_are_the_masked_ones_or_the_trained_models_own_best():
    heads = {"heads": ["1-0", "1-1"], "retrieval_heads": ["0-0", "0-1"]}
    assert watched_heads(config(), heads, SCORES) == (["1-0", "1-1"], "masked heads")
    assert watched_heads(config(), {**heads, "heads": []}, SCORES) == (["0-0", "0-1"], "retrieval heads (no mask)")
    # In a cross-model run the masked heads are another model's: the trained model's top two take their place.
    before = {"0-0": 0.1, "0-1": 0.8, "1-0": 0.6, "1-1": 0.3}
    group, name = watched_heads(config(synthesis_model={"path": "/synthesizer"}), heads, before)
    assert group == ["0-1", "1-0"] and name == "trained model's own top 2 heads"
