"""Submit the stage graph to SLURM through submitit: arrays for sharded stages, afterok
dependencies, and a manifest recording the job graph, so status/resume/cancel work later from
any shell. Submission returns as soon as everything is queued.

Resume submits only what is neither done on disk nor still queued or running, and points the
new jobs' dependencies at whatever upstream is still outstanding.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from jobs.pipeline import Stage, build_stages, stage_fingerprints
from jobs.profiles import ClusterProfile, scheduler_max_array_size
from jobs.runner import ShardTask
from retmask.config import ConfigError, ExperimentConfig
from retmask.rundir import RunDir


@dataclass
class StagePlan:
    stage: Stage
    fingerprint: str
    shards: int
    todo: list[int]
    parameters: dict = field(default_factory=dict)
    job_ids: dict[int, str] = field(default_factory=dict)
    arrays: list[str] = field(default_factory=list)
    log_folder: str = ""


def chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class SlurmPipeline:
    def __init__(self, cfg: ExperimentConfig, run: RunDir, profile: ClusterProfile, log=print,
                 until: str | None = None):
        from jobs.local import upstream_of

        self.cfg, self.run, self.profile, self.log = cfg, run, profile, log
        all_stages = build_stages(cfg)
        self.prints = stage_fingerprints(cfg, all_stages)
        self.stages = upstream_of(all_stages, until) if until else all_stages

    # ------------------------------------------------------------------ what each job asks for

    def uses_launcher(self, stage: Stage) -> bool:
        """Training on GPUs runs `accelerate launch` once per node; everything else is one process."""
        return stage.name == "train" and self.profile.gpus_per_node > 0

    def parameters(self, stage: Stage) -> dict:
        p = self.profile
        gpus = p.stage_gpus(stage.name)
        nodes = p.train_nodes if self.uses_launcher(stage) else 1
        params = {
            "job_name": f"retmask-{self.cfg.name}-{stage.name}",
            "partition": p.partition,
            "time": p.time_limit(stage.name),
            "nodes": nodes,
            "ntasks_per_node": 1,
            "cpus_per_task": p.cpus_per_gpu * gpus if gpus else p.cpus_per_task,
            "mem": f"{p.mem_per_gpu_gb * gpus if gpus else p.mem_gb}GB",
            "signal_delay_s": p.signal_delay_s,
            "array_parallelism": p.array_parallelism,
            "setup": list(p.setup),
            **p.gpu_parameters(gpus),
        }
        if p.account:
            params["account"] = p.account
        if p.qos:
            params["qos"] = p.qos
        return params

    def _function(self, stage: Stage):
        """Checkpointable callables: a job cut by its time limit or preempted is requeued."""
        if self.uses_launcher(stage):
            from jobs.launch import TrainingLaunch

            return TrainingLaunch()
        return ShardTask()

    # ------------------------------------------------------------------ rendering (dry run, golden files)

    def render(self, stage: Stage, shards: int, dependency: str | None = None, python: str = sys.executable,
               folder: str | None = None) -> str:
        """The sbatch script submitit would write for this stage, without submitting anything."""
        from submitit.slurm.slurm import _make_sbatch_string

        folder = folder or str(self.run.log_dir(stage.name) / "<attempt>")
        params = self.parameters(stage)
        if dependency:
            params["dependency"] = dependency
        text = _make_sbatch_string(command=f"{python} -u -m submitit.core._submit {folder}", folder=folder,
                                   map_count=shards if stage.shards(self.cfg) > 1 else None, **params)
        if self.uses_launcher(stage):
            from jobs.launch import describe_launch

            text += "\n# each node's task then runs (machine rank read on that node):\n"
            text += "\n".join(f"#   {line}" for line in describe_launch(self.cfg, self.profile,
                                                                        str(self.run.root)).splitlines()) + "\n"
        return text

    # ------------------------------------------------------------------ planning and submission

    def plan(self, active: dict[str, set[int]] | None = None, force: bool = False) -> list[StagePlan]:
        """What to submit: per stage, the shards neither done on disk (same fingerprint) nor active
        in the scheduler. Outputs of another fingerprint stop the plan unless `force`."""
        active = active or {}
        plans = []
        for stage in self.stages:
            on_disk = self.run.stage_fingerprint_on_disk(stage.name)
            if on_disk is not None and on_disk != self.prints[stage.name]:
                if not force:
                    raise ConfigError(f"stage {stage.name}: its outputs were written under another config "
                                      f"(fingerprint {on_disk}, now {self.prints[stage.name]}); rerun with --force to "
                                      "move them aside and recompute, or restore the config they were made with")
                moved = self.run.supersede(stage.name)
                self.log(f"[{stage.name}] config changed: earlier outputs kept in {moved}")
            done = self.run.done_shards(stage.name, self.prints[stage.name])
            count = stage.shards(self.cfg)
            todo = [k for k in range(count) if k not in done and k not in active.get(stage.name, set())]
            plans.append(StagePlan(stage, self.prints[stage.name], count, todo, self.parameters(stage)))
        return plans

    def submit(self, plans: list[StagePlan], outstanding: dict[str, list[str]] | None = None,
               max_array_size: int | None = None, parameter_updates: dict[str, dict] | None = None) -> dict:
        """Submit every plan with work, in graph order, each after its upstream jobs (afterok).

        `outstanding`: job ids, per stage, of earlier submissions still queued or running, which
        downstream jobs must also wait for. Returns the manifest it writes.
        """
        import submitit

        # Earlier jobs still queued or running are waited for task by task (their array may hold a
        # failed task, which an afterok on the whole array would never get past); new arrays whole.
        outstanding = {k: list(v) for k, v in (outstanding or {}).items()}
        limit = max_array_size or self.profile.max_array_size or scheduler_max_array_size()
        attempt = time.strftime("%Y%m%d-%H%M%S")
        for plan in plans:
            waits = [job for dep in plan.stage.depends for job in outstanding.get(dep, [])]
            if not plan.todo:
                continue
            plan.log_folder = str(self.run.log_dir(plan.stage.name) / attempt)
            executor = submitit.SlurmExecutor(folder=plan.log_folder)
            params = {**plan.parameters, **(parameter_updates or {}).get(plan.stage.name, {})}
            if waits:
                params["dependency"] = "afterok:" + ":".join(sorted(set(waits)))
            executor.update_parameters(**params)
            function = self._function(plan.stage)
            for part in chunks(plan.todo, limit):  # indices run 0..len-1 < MaxArraySize
                root, name = str(self.run.root), plan.stage.name
                if self.uses_launcher(plan.stage):
                    jobs = [executor.submit(function, root)]
                else:
                    jobs = executor.map_array(function, [root] * len(part), [name] * len(part), part)
                for shard, job in zip(part, jobs):
                    plan.job_ids[shard] = str(job.job_id)
                plan.arrays.append(_base_id(str(jobs[0].job_id)))
            outstanding[plan.stage.name] = outstanding.get(plan.stage.name, []) + plan.arrays
            self.log(f"[{plan.stage.name}] submitted {len(plan.todo)} shard(s) as {', '.join(plan.arrays)}"
                     + (f" after {params['dependency']}" if waits else ""))
        return self.record(plans)

    def record(self, plans: list[StagePlan]) -> dict:
        """Merge this submission into the manifest: job ids per shard, newest last."""
        manifest = self.run.read_manifest()
        manifest.update({"executor": "slurm", "updated": time.time(), "order": [s.name for s in self.stages],
                         "profile": self.profile.__dict__})
        stages = manifest.setdefault("stages", {})
        for plan in plans:
            entry = stages.setdefault(plan.stage.name, {})
            if entry.get("fingerprint") != plan.fingerprint:
                entry.clear()
            history = entry.setdefault("job_history", {})
            folders = entry.setdefault("log_folders", {})
            for shard, job_id in plan.job_ids.items():
                history.setdefault(str(shard), []).append(job_id)
                folders[str(shard)] = plan.log_folder
            entry.update({"fingerprint": plan.fingerprint, "depends": list(plan.stage.depends),
                          "shards": plan.shards, "parameters": plan.parameters})
            entry["job_ids"] = {shard: ids[-1] for shard, ids in history.items()}
        self.run.write_manifest(manifest)
        return manifest


def _base_id(job_id: str) -> str:
    """afterok on an array waits for all its tasks through the array's base id."""
    return job_id.split("_")[0]
