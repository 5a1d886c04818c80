"""Training's progress in the run directory: optimizer steps done of the total, with the latest
loss and DPO reward margin as its note (the trainer's own tqdm bar is off: it would only reach a
shard log)."""
from __future__ import annotations

from collections.abc import Callable

from transformers import TrainerCallback

from retmask.progress import ProgressReporter


class RunProgressCallback(TrainerCallback):
    """`reporter(total, done)` makes the reporter once the trainer knows its step count (a resumed
    run starts at its checkpoint's step); only the main process reports."""

    def __init__(self, reporter: Callable[[int, int], ProgressReporter]):
        self._make_reporter = reporter
        self._reporter: ProgressReporter | None = None
        self._note = ""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self._reporter = self._make_reporter(state.max_steps, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        said = [f"{name} {logs[key]:.4g}" for key, name in (("loss", "loss"), ("rewards/margins", "margin"))
                if isinstance(logs.get(key), (int, float))]
        self._note = ", ".join(said) or self._note
        self.on_step_end(args, state, control)  # the step's own numbers: logs come after its end

    def on_step_end(self, args, state, control, **kwargs):
        if self._reporter is not None:
            self._reporter.set(state.global_step, note=self._note)
