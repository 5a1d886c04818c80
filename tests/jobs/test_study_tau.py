"""A tau sweep's plan and config (`study.taus`, paper Table 6): a study without taus plans what it
always did, a sweep shares detection, bad taus and proxies are refused, the 8B sweeps ship. The
sweep itself runs end to end on the local SLURM in test_study_cluster.py."""
import pytest

from jobs.pipeline import build_stages, stage_fingerprints
from jobs.study import plan_runs
from retmask.study_config import load_study, study_run_config
from retmask.typed_yaml import ConfigError
from tests.conftest import REPO

SWEEP = REPO / "configs/toy-tau-sweep.yaml"


def test_a_study_without_taus_plans_the_runs_it_always_did(tmp_path, toy_model_dir):
    study, experiment, base = load_study(REPO / "configs/toy-study.yaml",
                                         ["study.strategies=[retrieval-mask, sft, win-lose-pair]"])
    runs = plan_runs(study, experiment, base, tmp_path, [1])
    assert [r.run.root.name for r in runs] == ["retrieval-mask-seed1", "sft-seed1", "win-lose-pair-seed1"]
    for run in runs:  # the names and fingerprints a study had before taus existed
        cfg = study_run_config(experiment, base, f"toy-study-{run.strategy}-seed1", run.strategy, 1, "",
                               study.overrides.get(run.strategy, []))
        assert run.cfg.name == cfg.name and run.cfg.selection.tau == 0.5 and run.tau is None
        assert run.prints == stage_fingerprints(cfg, build_stages(cfg))
    sweep_study, sweep_experiment, sweep_base = load_study(SWEEP)
    sweep_runs = plan_runs(sweep_study, sweep_experiment, sweep_base, tmp_path, [1])
    assert [r.cfg.selection.tau for r in sweep_runs] == [0.5, 0.99]
    # tau does not reach detection: one fingerprint for both taus (and for toy-study's tau 0.5);
    # merge_scores reads selection (its summary counts heads >= tau), so each tau merges anew
    assert sweep_runs[0].prints["detect"] == sweep_runs[1].prints["detect"] == runs[0].prints["detect"]
    for stage in ("merge_scores", "select_heads"):
        assert sweep_runs[0].prints[stage] != sweep_runs[1].prints[stage]


@pytest.mark.parametrize("taus, message", [
    ("[0.1, 0.1]", "[0.1] given twice"), ("[0, 0.5]", "[0.0] outside (0, 1]"), ("[0.5, 1.5]", "[1.5] outside (0, 1]")])
def test_bad_taus_are_refused_with_what_would_be_right(taus, message):
    with pytest.raises(ConfigError, match=r"study\.taus: .*distinct retrieval-score thresholds in \(0, 1\]") as error:
        load_study(SWEEP, [f"study.taus={taus}"])
    assert message in str(error.value)


def test_an_unknown_proxy_and_a_sweep_without_retmask_are_refused():
    with pytest.raises(ConfigError, match="tau_metric: 'helmet_judge' is not one of niah_rouge_recall"):
        load_study(SWEEP, ["study.tau_metric=helmet_judge"])
    with pytest.raises(ConfigError, match="tau is chosen on retrieval-mask runs"):
        load_study(SWEEP, ["study.strategies=[sft]"])


def test_the_papers_tau_pilots_score_seven_categories_at_one_length_per_model():
    """Table 6 as the paper ran it: RetMask at tau 0.05 and 0.1, HELMET with ROUGE in place of the judge
    over all seven categories (its untrained Qwen3 row is the mean of Table 10's seven), at 128K for
    Llama-3.1 and Qwen3 and 64K for Olmo-3 (configs/paper/table6-tau.yaml)."""
    study, experiment, _ = load_study(REPO / "configs/paper/table6-tau.yaml")
    assert study.taus == [0.05, 0.1] and study.tau_metric == "helmet_rouge" and study.strategies == ["retrieval-mask"]
    assert study.tau_helmet_categories == ["Recall", "RAG", "Cite", "Re-rank", "ICL", "LongQA", "Summ"]
    lengths = {name: v.config["helmet"]["lengths"] for name, v in study.variants.items()}
    assert lengths == {"llama-3.1-8b-instruct": [131072], "qwen3-8b": [131072], "olmo-3-7b-think": [65536]}
    assert experiment["selection"]["rule"] == "threshold" and experiment["model"]["path"] == ""  # the user's checkpoint
