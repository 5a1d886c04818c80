"""Stage fingerprints with a synthesis model: the stages that detect, mask and sample hash it, the
stages that train and evaluate hash the trained model, and runs without one are left as they were."""
import dataclasses

from jobs.pipeline import build_stages, stage_fingerprints
from retmask.config import ExperimentConfig, from_dict
from retmask.strategies import STRATEGIES

SYNTHESIS_STAGES = {"detect", "merge_scores", "select_heads", "mask", "prepare_prompts", "synthesize_chosen",
                    "synthesize_rejected"}
TRAINED_STAGES = {"pairs", "train", "evaluate_base", "evaluate", "report"}


def config(**sections):
    return from_dict(ExperimentConfig, {"name": "x", "toy_model": {}, "model": {"path": "/trained"},
                                        "rejected_model": {"path": "/smaller"}, **sections})


def changed(one: ExperimentConfig, other: ExperimentConfig) -> set[str]:
    a, b = stage_fingerprints(one, build_stages(one)), stage_fingerprints(other, build_stages(other))
    assert a.keys() == b.keys()
    return {name for name in a if a[name] != b[name]}


def test_without_a_synthesis_model_no_stage_reads_its_section():
    for strategy in STRATEGIES:
        cfg = config(strategy=strategy)
        sections = {section.split(".")[0] for stage in build_stages(cfg) for section in stage.sections}
        assert not sections & {"synthesis_model", "synthesis_toy_model"}, strategy
        # so its unused keys change nothing
        assert changed(cfg, config(strategy=strategy, synthesis_model={"dtype": "bfloat16"})) == set()


def test_the_synthesis_model_decides_detection_masking_and_both_samples():
    cross = config(synthesis_model={"path": "/synthesizer"})
    other = config(synthesis_model={"path": "/other-synthesizer"})
    assert changed(cross, other) == SYNTHESIS_STAGES | TRAINED_STAGES  # everything downstream of the samples
    assert changed(cross, config(synthesis_model={"path": "/synthesizer"}, model={"path": "/other"})) \
        == TRAINED_STAGES


def test_the_trained_models_dtype_reaches_only_the_stages_that_load_it():
    cross = config(synthesis_model={"path": "/synthesizer"})
    trained_dtype = dataclasses.replace(cross, model=dataclasses.replace(cross.model, dtype="bfloat16"))
    assert changed(cross, trained_dtype) == {"train", "evaluate_base", "evaluate", "report"}
    synthesis_dtype = dataclasses.replace(cross, synthesis_model=dataclasses.replace(cross.synthesis_model,
                                                                                     dtype="bfloat16"))
    assert {"detect", "synthesize_chosen", "synthesize_rejected"} <= changed(cross, synthesis_dtype)
    assert "prepare_prompts" not in changed(cross, synthesis_dtype)  # it reads the tokenizer alone


def test_a_synthesis_model_adds_its_unmasked_evaluation():
    plain, cross = config(), config(synthesis_model={"path": "/synthesizer"})
    shards = {cfg.cross_model: {s.name: s.shards(cfg) for s in build_stages(cfg)} for cfg in (plain, cross)}
    assert shards[True]["evaluate_base"] == shards[False]["evaluate_base"] + 1
