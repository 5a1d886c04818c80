"""Experiment tracking on a real toy run with `train.report_to: [tensorboard]`: the training
curves, the attached config and the figures of the evaluate and report stages are in event files
that TensorBoard's own reader loads, with the values the stages wrote to disk."""
import pytest

from jobs.runner import record_config
from retmask.config import ConfigError, load_config
from retmask.io import read_json, read_jsonl, write_json
from retmask.rundir import RunDir
from retmask.tracking import (
    CONFIG_TAG,
    check_report_to,
    flatten,
    log_results,
    run_destination,
    run_name,
    study_destination,
    tracking_dir,
    training_arguments,
)
from tests.conftest import REPO, SMALL_RUN

# The shared small run's overrides (tests/conftest.py) without its tracker.
SMALL = [override for override in SMALL_RUN if not override.startswith("train.report_to")]


def events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return accumulator


def text(accumulator, tag: str) -> str:
    (event,) = accumulator.Tensors(f"{tag}/text_summary")
    return event.tensor_proto.string_val[0].decode()


@pytest.fixture
def tracked_run(small_toy_run):
    """The shared small run, tracked with TensorBoard (train.report_to: [tensorboard])."""
    assert small_toy_run.cfg.train.report_to == ["tensorboard"]
    return small_toy_run.cfg, small_toy_run.run


def test_training_curves_are_in_tensorboard_at_every_logging_step(tracked_run):
    cfg, run = tracked_run
    accumulator = events(tracking_dir(run))
    log = read_jsonl(run.stage_dir("train") / "train_log.jsonl")
    steps = read_json(run.stage_dir("train") / "summary.json")["global_step"]
    assert len(log) == steps // cfg.train.logging_steps
    for key in ("loss", "rewards/margins"):
        points = accumulator.Scalars(f"train/{key}")
        assert [p.step for p in points] == [row["step"] for row in log]
        assert [p.value for p in points] == pytest.approx([row[key] for row in log])


def test_the_resolved_config_is_attached_to_the_tracked_run(tracked_run):
    _, run = tracked_run
    attached = text(events(tracking_dir(run)), CONFIG_TAG)
    assert [line.removeprefix("    ") for line in attached.splitlines()] == run.config_path.read_text().splitlines()
    assert "  report_to:\n  - tensorboard" in run.config_path.read_text()


def test_evaluation_and_report_figures_are_the_ones_written_to_disk(tracked_run):
    _, run = tracked_run
    accumulator = events(tracking_dir(run))
    step = read_json(run.stage_dir("train") / "summary.json")["global_step"]

    def logged(tag):
        (point,) = accumulator.Scalars(tag)
        assert point.step == step  # the figures of the trained model sit where its training ended
        return point.value

    for entry in read_json(run.stage_dir("evaluate") / "niah.json"):
        assert logged(f"evaluate/niah_accuracy/{entry['model']}") == pytest.approx(entry["accuracy"])
    change = read_json(run.stage_dir("evaluate") / "retrieval_change.json")
    for key in ("mean_before", "mean_after", "masked_mean_delta", "other_mean_delta"):
        assert logged(f"evaluate/retrieval/{key}") == pytest.approx(change[key])
    metrics = read_json(run.report_dir / "metrics.json")
    assert logged("report/final_margin") == pytest.approx(metrics["final_margin"])
    assert logged("report/health/learned") == float(metrics["health"]["learned"])
    assert text(accumulator, "report/health/verdict") == metrics["health"]["verdict"]


def test_a_study_logs_its_table_and_claims_beside_its_runs(tracked_run, tmp_path):
    """The study's figures from a real report over a one-run plan (the tracked run as its
    retrieval-mask run), sent where `retmask study` sends them."""
    from analysis.study_report import write_study_report
    from jobs.study import study_figures

    cfg, run = tracked_run
    lengths = sorted({r["length"] for r in read_json(run.stage_dir("evaluate") / "niah.json")[0]["records"]})
    study_dir = tmp_path / "study"
    write_json(study_dir / "study.json", {
        "name": "tracked", "development": True, "seeds": [0], "strategies": ["retrieval-mask"],
        "long_from": lengths[-1], "metric": "accuracy",
        "runs": [{"strategy": "retrieval-mask", "seed": 0, "run_dir": str(run.root)}]})
    write_study_report(study_dir)

    log_results(study_destination(cfg, study_dir, "tracked"), "study", study_figures(study_dir))

    results = read_json(study_dir / "report" / "study_results.json")
    accumulator = events(study_dir / "tracking")
    (point,) = accumulator.Scalars("study/tables/accuracy/retrieval-mask/long/mean")
    assert point.value == pytest.approx(results["tables"]["accuracy"]["retrieval-mask"]["long"]["mean"])
    claim = results["claims"][0]
    assert text(accumulator, f"study/claims/{claim['key']}") == f"{claim['verdict']}: {claim['statement']}"


def test_an_untracked_trainer_gets_no_tracker_and_its_config_callback_does_nothing(tracked_run, tmp_path):
    """The trainer of a run without trackers, built as the train stage builds it: no tracker
    callback, and beginning training leaves no tracking folder behind."""
    import datasets

    from jobs.stages.pairs import pairs_dir
    from retmask.dpo import build_dpo_trainer
    from retmask.generation import load_model

    _, tracked = tracked_run
    cfg = load_config(REPO / "configs" / "tiny.yaml", SMALL)
    cfg.run_dir = str(tmp_path / "run")
    run = record_config(cfg)
    model, tokenizer = load_model(cfg.model.path, "float32", for_training=True)
    dataset = datasets.load_from_disk(str(pairs_dir(tracked) / "dataset"))
    trainer = build_dpo_trainer(model, tokenizer, dataset, cfg.train, run.stage_dir("train") / "trainer",
                                run.stage_dir("train") / "train_log.jsonl")
    assert trainer.args.report_to == []
    trainer.callback_handler.on_train_begin(trainer.args, trainer.state, trainer.control)
    assert not tracking_dir(run).exists()


def test_tracker_names_are_checked_against_transformers_list():
    from transformers.integrations import INTEGRATION_TO_CALLBACK, get_available_reporting_integrations

    assert check_report_to(["none"]) == []
    assert check_report_to(["all"]) == get_available_reporting_integrations()
    assert check_report_to(["tensorboard"]) == ["tensorboard"]
    with pytest.raises(ConfigError) as error:
        check_report_to(["tensorbord"])
    assert "'tensorbord' is not a tracker transformers supports" in str(error.value)
    assert ", ".join(INTEGRATION_TO_CALLBACK) in str(error.value)


@pytest.mark.skipif(__import__("importlib").util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_a_supported_tracker_that_is_not_installed_is_named_with_the_installed_ones():
    with pytest.raises(ConfigError, match=r"train.report_to: 'wandb' is not installed here; .* installed ones: "
                                          r"tensorboard"):
        check_report_to(["wandb"])


def test_a_tracked_trainer_outside_a_run_directory_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="is not inside a run directory"):
        training_arguments(["tensorboard"], tmp_path / "trainer")


def test_run_names_tell_runs_of_one_config_apart(tmp_path):
    assert run_name("tiny", tmp_path / "runs" / "tiny") == "tiny"
    assert run_name("tiny", tmp_path / "e2e" / "run") == "tiny-run"
    assert run_name("toy-study-sft-seed1", tmp_path / "runs" / "sft-seed1") == "toy-study-sft-seed1"


def test_flatten_keeps_numbers_and_text_and_leaves_out_lists_and_missing_values():
    scalars, texts = flatten({"a": {"b": 1, "ok": True, "none": None, "heads": ["3-1"]}, "line": "x"}, "p")
    assert scalars == {"p/a/b": 1.0, "p/a/ok": 1.0}
    assert texts == {"p/line": "x"}


def test_nothing_is_logged_for_an_untracked_run(tmp_path):
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    run = RunDir(tmp_path / "run")
    log_results(run_destination(cfg, run), "evaluate", {"accuracy": 1.0})
    assert not tracking_dir(run).exists()
