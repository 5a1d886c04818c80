"""A cost plan before anything is queued: per job of the run, its work (NIAH instances, prompts,
pair passes), tasks, GPUs per task and, from the rates a pilot run measured on the same cluster,
the expected time per task, wall-clock and GPU-hours, with the time limits the plan would exceed.

A pilot is the same experiment with few prompts (`--set synthesis.max_prompts=...`): its shards'
progress files (retmask/progress.py) hold what each task did per second. Without a pilot the
plan gives the work and says which rates are missing; it never invents one.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from jobs.cluster import ClusterPipeline
from jobs.profiles import ClusterProfile
from retmask.config import ConfigError, ExperimentConfig
from retmask.io import read_json
from retmask.progress import format_duration, format_rate
from retmask.rundir import RunDir

TRAIN_UNIT = "pair passes"  # pairs x epochs: what a training step's time is spread over


@dataclass
class Work:
    count: int | None  # None: not known before the run (an input not found here)
    unit: str
    note: str = ""


@dataclass
class PilotRate:
    per_task: float  # work units per second of one task (the median of the pilot's tasks)
    tokens_per_task: float | None = None  # generated tokens per second of one task (synthesis)


@dataclass
class JobPlan:
    stage: str
    work: Work
    tasks: int
    gpus_per_task: int
    parallel: int  # tasks running at once
    limit_min: int
    rate: PilotRate | None = None
    depends: tuple[str, ...] = ()

    @property
    def task_s(self) -> float | None:
        if self.rate is None or self.work.count is None:
            return None
        return self.work.count / self.tasks / self.rate.per_task

    @property
    def wall_s(self) -> float | None:
        return None if self.task_s is None else math.ceil(self.tasks / self.parallel) * self.task_s

    @property
    def gpu_hours(self) -> float | None:
        return None if self.task_s is None else self.tasks * self.task_s * self.gpus_per_task / 3600

    @property
    def over_limit(self) -> bool:
        return self.task_s is not None and self.task_s > self.limit_min * 60


def niah_instances(needles: str, lengths: list[int], depths: int) -> int:
    from retmask.niah import depth_grid, grid, load_needles

    return len(grid(*lengths)) * len(depth_grid(depths)) * len(load_needles(needles))


def prompt_count(cfg: ExperimentConfig) -> Work:
    from jobs.stages.prompts import source_rows

    s = cfg.synthesis
    path = Path(s.prompts)
    if not s.prompts or not path.exists():
        if s.max_prompts:
            return Work(s.max_prompts, "prompts", f"at most (synthesis.prompts {s.prompts or 'unset'} not found here)")
        return Work(None, "prompts", f"synthesis.prompts {s.prompts or 'unset'} not found here")
    rows = source_rows(path)
    count = min(rows, s.max_prompts) if s.max_prompts else rows
    return Work(count, "prompts", "at most: the prompt filters drop some")


def work(cfg: ExperimentConfig, stage: str, pairs_per_prompt: float | None) -> Work:
    """The stage's work in the unit its shards count progress in."""
    d, e = cfg.detection, cfg.evaluation
    if stage == "toy_model":
        return Work(cfg.toy_model.steps, "steps")
    if stage == "detect":
        return Work(niah_instances(d.needles, d.lengths, d.depths), "instances")
    if stage in ("synthesize_chosen", "synthesize_rejected"):
        prompts = prompt_count(cfg)
        tokens = f"; at most {prompts.count * cfg.synthesis.sampling.max_new_tokens:,} new tokens" \
            if prompts.count else ""
        return Work(prompts.count, "rows", prompts.note + tokens)
    if stage == "train":
        prompts = prompt_count(cfg)
        if prompts.count is None:
            return Work(None, TRAIN_UNIT, prompts.note)
        share, note = (pairs_per_prompt, "pairs at the pilot's share of prompts") if pairs_per_prompt else \
            (1.0, "at most one pair per prompt")
        pairs = round(prompts.count * share)
        passes = pairs * cfg.train.epochs
        if cfg.train.max_steps > 0:
            passes = min(passes, cfg.train.max_steps * cfg.train.global_batch_size)
        return Work(round(passes), TRAIN_UNIT, f"{pairs:,} {note} x {cfg.train.epochs:g} epochs")
    if stage in ("evaluate_base", "evaluate"):
        return Work(None, "tasks", f"NIAH {niah_instances(d.needles, e.niah_lengths, e.niah_depths)} instances per "
                                   "model; timed as the pilot's tasks")
    return Work(None, "tasks", "timed as the pilot's tasks")


def pilot_rates(pilot: RunDir, pilot_cfg: ExperimentConfig) -> dict[str, PilotRate]:
    """Per stage, what one task of the pilot did per second: from its shards' progress where they
    count work (detection, synthesis, training), else from how long its tasks took."""
    rates = {}
    for stage in read_json(pilot.manifest_path).get("stages", {}):
        progresses = [p for p in pilot.stage_progress(stage).values() if p.rate is not None]
        if progresses:
            per_task = statistics.median(p.rate for p in progresses)
            tokens = [p.token_rate for p in progresses if p.token_rate]
            if stage == "train":  # steps -> pair passes, so that another global batch size still plans
                per_task *= pilot_cfg.train.global_batch_size
            rates[stage] = PilotRate(per_task, statistics.median(tokens) if tokens else None)
            continue
        seconds = [read_json(path)["seconds"] for path in sorted((pilot.stage_dir(stage) / "done").glob("*.json"))]
        if seconds:
            rates[stage] = PilotRate(1 / max(statistics.median(seconds), 1e-3))  # tasks per second
    return rates


def pairs_share(pilot: RunDir) -> float | None:
    path = pilot.stage_dir("pairs") / "statistics.json"
    if not path.is_file():
        return None
    stats = read_json(path)
    return stats["pairs"] / stats["prompts"] if stats.get("prompts") else None


def pilot_elsewhere(manifest: dict, profile: ClusterProfile) -> str | None:
    """How the pilot's machine differs from the profile's (None: the same queue and GPUs)."""
    if manifest.get("executor") in (None, "local"):
        return "locally, not as jobs of a cluster"
    ran = manifest.get("profile", {})
    differences = [f"{key} {ran.get(key)!r}" for key in ("kind", "partition", "resource_types", "gpus_per_node")
                   if ran.get(key) != getattr(profile, key)]
    return "with " + ", ".join(differences) if differences else None


def plan(cfg: ExperimentConfig, profile: ClusterProfile, pilot: RunDir | None = None) -> tuple[list[JobPlan], list[str]]:
    """The jobs' plans, and notes (a pilot from elsewhere, rates missing)."""
    from jobs.runner import load_run_config

    notes = []
    rates, share = {}, None
    if pilot is not None:
        if not pilot.manifest_path.is_file():
            raise ConfigError(f"--pilot {pilot.root}: not a run directory (no manifest.json)")
        elsewhere = pilot_elsewhere(pilot.read_manifest(), profile)
        if elsewhere:
            notes.append(f"the pilot ran {elsewhere}: its rates are that machine's, not this cluster's")
        pilot_cfg = load_run_config(pilot)
        if pilot_cfg.model.path != cfg.model.path:
            notes.append(f"the pilot's model is {pilot_cfg.model.path}, this plan's {cfg.model.path}")
        rates, share = pilot_rates(pilot, pilot_cfg), pairs_share(pilot)
    pipeline = ClusterPipeline(cfg, RunDir("/nonexistent/plan"), profile, log=lambda line: None)
    jobs = []
    for unit in pipeline.units:
        request = pipeline.request(unit.stage)
        tasks = unit.stage.shards(cfg)
        job = JobPlan(unit.name, work(cfg, unit.name, share), tasks, request.gpus * request.nodes,
                      min(tasks, request.array_parallelism), request.minutes, rates.get(unit.name),
                      unit.waits_for)
        if job.work.unit == "tasks" and job.rate is not None:
            job.work.count = tasks  # timed per task
        jobs.append(job)
    missing = [f"{job.stage} ({'seconds per task' if job.work.unit == 'tasks' else job.work.unit + '/s per task'})"
               for job in jobs if job.rate is None]
    if missing:
        notes.append("rates missing: " + ", ".join(missing) + ". Measure them with a pilot on this cluster: "
                     "retmask submit CONFIG --cluster PROFILE --set synthesis.max_prompts=2048, then "
                     "retmask plan CONFIG --cluster PROFILE --pilot RUN")
    unknown = [f"{job.stage}: {job.work.note}" for job in jobs if job.work.count is None and job.work.unit != "tasks"]
    notes += [f"work unknown: {line}" for line in unknown]
    return jobs, notes


def critical_path_s(jobs: list[JobPlan]) -> float | None:
    """Wall-clock from the first job to the last, each starting when those it waits for end."""
    by_name, finish = {job.stage: job for job in jobs}, {}
    for job in jobs:  # in graph order
        if job.wall_s is None:
            return None
        start = max((finish[d] for d in job.depends if d in by_name), default=0.0)
        finish[job.stage] = start + job.wall_s
    return max(finish.values(), default=0.0)


def over_limit_advice(job: JobPlan, profile: ClusterProfile) -> str:
    """What to change when a task would outlast its time limit: a longer limit within the site's
    cap, else more shards (training instead requeues itself from its checkpoints)."""
    needed = math.ceil(job.task_s * 1.2 / 600) * 10  # 20% margin, whole 10 minutes
    cap = profile.max_time_limit_min
    advice = f"over the {format_duration(job.limit_min * 60)} limit: "
    if not cap or needed <= cap:
        return advice + f"set time_limit_min.{job.stage}: {needed}"
    if job.stage == "train":
        return advice + f"needs {needed} min over the site's cap of {cap}: it requeues from its checkpoints"
    shards = math.ceil(job.tasks * job.task_s * 1.2 / (cap * 60))
    key = {"detect": "detection.shards"}.get(job.stage, "synthesis.shards" if "synthesize" in job.stage else "shards")
    return advice + f"over the site's cap of {cap} min: set {key}: {shards} or more"


def format_plan(jobs: list[JobPlan], notes: list[str], profile: ClusterProfile, label: str) -> str:
    header = (f"{'job':<20}{'work':>14} {'unit':<12}{'tasks':>6}{'GPUs':>6}{'rate/task':>12}{'per task':>10}"
              f"{'wall':>9}{'GPU-h':>9}{'limit':>8}  flag")
    lines = [f"cost plan on {label} ({profile.kind})", header, "-" * len(header)]
    for job in jobs:
        count = "?" if job.work.count is None else f"{job.work.count:,}"
        rate = f"{format_rate(job.rate.per_task)}/s" if job.rate else "?"
        task = format_duration(job.task_s) if job.task_s is not None else "?"
        wall = format_duration(job.wall_s) if job.wall_s is not None else "?"
        gpu_hours = "?" if job.gpu_hours is None else f"{job.gpu_hours:,.1f}" if job.gpu_hours >= 1 else \
            f"{job.gpu_hours:.2g}"
        flag = over_limit_advice(job, profile) if job.over_limit else ""
        lines.append(f"{job.stage:<20}{count:>14} {job.work.unit:<12}{job.tasks:>6}{job.gpus_per_task:>6}"
                     f"{rate:>12}{task:>10}{wall:>9}{gpu_hours:>9}{format_duration(job.limit_min * 60):>8}  {flag}")
    for job in jobs:
        if job.work.note:
            lines.append(f"  {job.stage}: {job.work.note}")
        if job.rate and job.rate.tokens_per_task:
            lines.append(f"  {job.stage}: {format_rate(job.rate.tokens_per_task)} tokens/s per task in the pilot")
    known = [job.gpu_hours for job in jobs if job.gpu_hours is not None]
    path = critical_path_s(jobs)
    if not known:
        lines.append("total: unknown until the rates are measured")
    else:
        lines.append(f"total: {sum(known):,.1f} GPU-hours" + ("" if len(known) == len(jobs) else " (jobs without "
                     "a rate not counted)") + (f", about {format_duration(path)} from first job to last (no "
                                               "queue waits)" if path is not None else ""))
    lines += notes
    return "\n".join(lines)
