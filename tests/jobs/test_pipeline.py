from jobs.pipeline import build_stages, stage_fingerprints
from retmask.config import ExperimentConfig, from_dict


def config(**sections):
    return from_dict(ExperimentConfig, {"name": "x", "toy_model": {}, **sections})


def test_stage_order_respects_dependencies():
    stages = build_stages(config())
    seen = set()
    for stage in stages:
        assert set(stage.depends) <= seen, stage.name
        seen.add(stage.name)
    assert [s.name for s in stages][:2] == ["toy_model", "detect"]


def test_changed_key_changes_exactly_its_stages_and_their_dependents():
    base = stage_fingerprints(config(), build_stages(config()))
    changed = stage_fingerprints(config(train={"beta": 0.3}), build_stages(config()))
    differ = {name for name in base if base[name] != changed[name]}
    assert differ == {"train", "evaluate", "report"}
    detection = stage_fingerprints(config(detection={"depths": 3}), build_stages(config()))
    differ = {name for name in base if base[name] != detection[name]}
    assert "synthesize_chosen" not in differ and {"detect", "synthesize_rejected", "train"} <= differ


def test_shard_counts_come_from_the_config():
    stages = {s.name: s for s in build_stages(config(detection={"shards": 3}))}
    cfg = config(detection={"shards": 3})
    assert stages["detect"].shards(cfg) == 3 and stages["merge_scores"].shards(cfg) == 1


def test_the_control_seed_redraws_only_a_control_strategys_mask():
    def changed(strategy: str) -> set[str]:
        one, other = config(strategy=strategy), config(strategy=strategy, control_seed=7)
        a, b = stage_fingerprints(one, build_stages(one)), stage_fingerprints(other, build_stages(other))
        return {name for name in a if a[name] != b[name]}

    assert changed("retrieval-mask") == set()  # its mask is the retrieval set, whatever the seed
    assert {"select_heads", "mask", "synthesize_rejected", "train"} <= changed("random-mask")
    assert not changed("random-mask") & {"detect", "merge_scores", "evaluate_base", "synthesize_chosen"}


def test_choosing_a_tracker_or_keeping_checkpoints_reruns_nothing():
    cfg = from_dict(ExperimentConfig, {"name": "t", "model": {"path": "/m"}})
    for train in ({"report_to": ["tensorboard"]}, {"keep_checkpoints": True}):
        other = from_dict(ExperimentConfig, {"name": "t", "model": {"path": "/m"}, "train": train})
        assert stage_fingerprints(cfg, build_stages(cfg)) == stage_fingerprints(other, build_stages(other)), train
