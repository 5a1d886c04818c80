"""Experiment tracking (`train.report_to`): training curves go to the trackers transformers
supports through its own callbacks; this module attaches the run's resolved config to them and
sends the figures later stages compute (evaluation, report, study) to the same trackers.

TensorBoard writes into `<run>/stages/train/tracking`, the training curves and the later figures
alike, so `tensorboard --logdir <run>` shows a run whole. Other trackers get their figures through
their documented Python APIs; the tracker run ids training opened are kept in `trackers.json`
there, so a later stage (another process, another job) logs to the same tracker run.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retmask.config import ALL_TRACKERS, NO_TRACKER, ExperimentConfig, read_saved_config
from retmask.io import read_json, write_json
from retmask.rundir import RunDir
from retmask.typed_yaml import ConfigError

FOLDER = "tracking"
RECORD = "trackers.json"
CONFIG_TAG = "experiment_config"
# TensorBoardCallback takes its folder from this variable when the trainer is built (transformers
# 5 has no logging_dir argument; without it the events land in output_dir/runs/<date_host>).
TENSORBOARD_DIR_VARIABLE = "TENSORBOARD_LOGGING_DIR"
TENSORBOARD, WANDB, TRACKIO = "tensorboard", "wandb", "trackio"

logger = logging.getLogger(__name__)


def tracking_dir(run: RunDir) -> Path:
    return run.stage_dir("train") / FOLDER


def check_report_to(report_to: list[str], key: str = "train.report_to") -> list[str]:
    """The trackers `report_to` names, each one transformers supports and finds installed here
    ([all]: every installed one); [] for [none], without importing transformers."""
    if report_to == [NO_TRACKER]:
        return []
    from transformers.integrations import INTEGRATION_TO_CALLBACK, get_available_reporting_integrations

    installed = get_available_reporting_integrations()
    if report_to == [ALL_TRACKERS]:
        return installed
    for name in report_to:
        if name not in INTEGRATION_TO_CALLBACK:
            raise ConfigError(f"{key}: {name!r} is not a tracker transformers supports; choose from "
                              f"{', '.join(INTEGRATION_TO_CALLBACK)}, or [{ALL_TRACKERS}] or [{NO_TRACKER}]")
        if name not in installed:
            raise ConfigError(f"{key}: {name!r} is not installed here; install its package (tensorboard comes with "
                              f"the `tracking` extra), or choose from the installed ones: "
                              f"{', '.join(installed) or 'none'}")
    return list(report_to)


def run_name(experiment: str, folder: Path) -> str:
    """The experiment's name, with its folder's when that tells two runs of one config apart."""
    return experiment if experiment.endswith(folder.name) else f"{experiment}-{folder.name}"


def run_holding(path: Path) -> RunDir | None:
    """The run directory whose stage folders hold `path` (<run>/stages/<stage>/...), if any: the
    trainer is built from the train section and its output folder alone."""
    for parent in Path(path).absolute().parents:
        if parent.name == "stages" and RunDir(parent.parent).config_path.is_file():
            return RunDir(parent.parent)
    return None


def training_arguments(report_to: list[str], output_dir: Path) -> dict:
    """report_to and run_name of the TrainingArguments."""
    trackers = check_report_to(report_to)
    if not trackers:
        return {"report_to": NO_TRACKER}
    run = run_holding(output_dir)
    if run is None:
        raise ConfigError(f"train.report_to is {report_to} but the trainer's folder {output_dir} is not inside a "
                          "run directory (<run>/stages/train/...), whose config names the tracked run")
    return {"report_to": trackers, "run_name": run_name(read_saved_config(run.config_path).name, run.root)}


@contextlib.contextmanager
def tensorboard_folder(args) -> Iterator[None]:
    """Build the trainer inside this: TensorBoard then writes into the run's tracking folder."""
    if TENSORBOARD not in args.report_to:
        yield
        return
    previous = os.environ.get(TENSORBOARD_DIR_VARIABLE)
    os.environ[TENSORBOARD_DIR_VARIABLE] = str(tracking_dir(run_holding(Path(args.output_dir))))
    try:
        yield
    finally:
        if previous is None:
            del os.environ[TENSORBOARD_DIR_VARIABLE]
        else:
            os.environ[TENSORBOARD_DIR_VARIABLE] = previous


def attach_run_config(trainer) -> None:
    """Attach the run's resolved config to the tracker callbacks the trainer already has, once they
    have opened their run (they come first in its callback list: transformers adds them when it
    builds the trainer), and record the tracker run ids later stages log to. A callback of its
    own, built here so that only training imports transformers; with no tracker it does nothing."""
    from transformers import TrainerCallback

    callbacks = trainer.callback_handler.callbacks
    run = run_holding(Path(trainer.args.output_dir))

    class RunConfigCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero and run is not None:
                _attach_config(callbacks, run, args)

    trainer.add_callback(RunConfigCallback())


def _attach_config(callbacks: list, run: RunDir, args) -> None:
    from transformers.integrations import TensorBoardCallback, TrackioCallback, WandbCallback

    trackers = [c for c in callbacks if isinstance(c, (TensorBoardCallback, WandbCallback, TrackioCallback))]
    if not trackers:
        return
    text = run.config_path.read_text()
    config = {"experiment": read_saved_config(run.config_path).to_dict()}
    record = {}
    for tracker in trackers:
        if isinstance(tracker, TensorBoardCallback):
            tracker.tb_writer.add_text(CONFIG_TAG, _markdown_code(text))
            tracker.tb_writer.flush()
        elif isinstance(tracker, WandbCallback):
            import wandb

            wandb.config.update(config, allow_val_change=True)
            record[WANDB] = {"id": wandb.run.id, "project": wandb.run.project, "entity": wandb.run.entity}
        else:
            import trackio

            trackio.config.update(config, allow_val_change=True)
            record[TRACKIO] = {"project": args.project, "name": args.run_name}
    if record:
        write_json(tracking_dir(run) / RECORD, record)


def _markdown_code(text: str) -> str:
    """TensorBoard renders text as markdown: indented, the YAML keeps its lines and indentation."""
    return "\n".join("    " + line for line in text.splitlines())


@dataclass(frozen=True)
class Destination:
    """Where one run's (or one study's) figures go."""

    trackers: list[str]
    folder: Path  # TensorBoard's event files and the trackers' run ids
    name: str
    step: int = 0  # a run's figures describe the trained model: they sit at training's last step
    record: dict = field(default_factory=dict)


def run_destination(cfg: ExperimentConfig, run: RunDir) -> Destination:
    folder = tracking_dir(run)
    summary = run.stage_dir("train") / "summary.json"
    return Destination(check_report_to(cfg.train.report_to), folder, run_name(cfg.name, run.root),
                       read_json(summary)["global_step"] if summary.is_file() else 0, _record(folder))


def study_destination(cfg: ExperimentConfig, study_dir: Path, name: str) -> Destination:
    folder = Path(study_dir) / FOLDER
    return Destination(check_report_to(cfg.train.report_to), folder, run_name(name, Path(study_dir)),
                       record=_record(folder))


def _record(folder: Path) -> dict:
    return read_json(folder / RECORD) if (folder / RECORD).is_file() else {}


def flatten(data: Mapping[str, Any], prefix: str) -> tuple[dict[str, float], dict[str, str]]:
    """Numbers (booleans as 0/1) and strings of nested mappings, keyed by their path; lists and
    missing values are left out."""
    scalars: dict[str, float] = {}
    texts: dict[str, str] = {}
    for key, value in data.items():
        path = f"{prefix}/{key}"
        if isinstance(value, Mapping):
            inner_scalars, inner_texts = flatten(value, path)
            scalars.update(inner_scalars)
            texts.update(inner_texts)
        elif isinstance(value, (bool, int, float)):
            scalars[path] = float(value)
        elif isinstance(value, str):
            texts[path] = value
    return scalars, texts


def log_results(destination: Destination, prefix: str, data: Mapping[str, Any]) -> None:
    """Send the numbers and strings of `data`, under `prefix`, to every tracker of the
    destination; nothing without one."""
    if not destination.trackers:
        return
    scalars, texts = flatten(data, prefix)
    scalars = {_tag(k): v for k, v in scalars.items()}
    texts = {_tag(k): v for k, v in texts.items()}
    senders = {TENSORBOARD: _to_tensorboard, WANDB: _to_wandb, TRACKIO: _to_trackio}
    for tracker in destination.trackers:
        if tracker in senders:
            senders[tracker](destination, scalars, texts)
        else:
            logger.warning("%s results are not sent to %s (only to %s); they are in the run's files", prefix,
                           tracker, ", ".join(senders))


def _tag(path: str) -> str:
    """TensorBoard tag characters: letters, digits, '-', '_', '.', '/'."""
    return re.sub(r"[^-/\w.]", "_", path)


def _to_tensorboard(destination: Destination, scalars: dict[str, float], texts: dict[str, str]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(destination.folder))
    try:
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, destination.step)
        for tag, text in texts.items():
            writer.add_text(tag, text, destination.step)
    finally:
        writer.close()


def _to_wandb(destination: Destination, scalars: dict[str, float], texts: dict[str, str]) -> None:
    import wandb

    known = destination.record.get(WANDB, {})
    run = wandb.init(id=known.get("id"), project=known.get("project"), entity=known.get("entity"),
                     name=destination.name, resume="allow")
    run.log(scalars)
    run.summary.update(texts)
    run.finish()


def _to_trackio(destination: Destination, scalars: dict[str, float], texts: dict[str, str]) -> None:
    import trackio
    from transformers import TrainingArguments

    known = destination.record.get(TRACKIO, {})
    trackio.init(project=known.get("project", TrainingArguments.project), name=known.get("name", destination.name),
                 resume="allow")
    trackio.log(scalars)  # trackio logs numbers; the texts stay in the run's files
    trackio.finish()
