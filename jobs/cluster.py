"""Submit the stage graph to a batch scheduler (jobs/schedulers/) through submitit: one job (an
array when sharded) per scheduling unit (jobs/units.py: heavy stages hosting the light ones), afterok dependencies, and a
manifest recording the job graph, so status/resume/cancel work later from any shell. The manifest
is rewritten as each job is accepted, so a submission cut short leaves no job unrecorded.

Resume submits only what is neither done on disk nor still queued or running, and points the
new jobs' dependencies at whatever upstream is still outstanding.
"""
from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass, field

from jobs.pipeline import Stage, build_stages, stage_fingerprints
from jobs.profiles import ClusterProfile
from jobs.schedulers import scheduler_for
from jobs.schedulers.base import JobRequest
from jobs.units import Unit, is_light, scheduling_units
from retmask.config import ConfigError, ExperimentConfig
from retmask.errors import UserError
from retmask.rundir import RunDir


@dataclass
class StagePlan:
    """One job to submit: a unit's shards still to do, with the light stages it hosts."""
    unit: Unit
    fingerprint: str
    shards: int
    todo: list[int]
    parameters: dict = field(default_factory=dict)
    job_ids: dict[int, str] = field(default_factory=dict)
    arrays: list[str] = field(default_factory=list)
    log_folder: str = ""

    @property
    def stage(self) -> Stage:
        return self.unit.stage


class SubmissionCut(UserError):
    """The scheduler refused a job part way through a submission."""


def chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class ClusterPipeline:
    def __init__(self, cfg: ExperimentConfig, run: RunDir, profile: ClusterProfile, log=print,
                 until: str | None = None, shared: dict[str, RunDir] | None = None):
        """`shared`: in a study, stage -> the run that computes it (jobs/sharing.py); those stages
        are no jobs of this run: its jobs wait for the owner's and take them. Default: as the run's
        manifest recorded at its first submission."""
        from jobs.local import upstream_of

        self.cfg, self.run, self.profile, self.log = cfg, run, profile, log
        self.scheduler = scheduler_for(profile)
        all_stages = build_stages(cfg)
        self.prints = stage_fingerprints(cfg, all_stages)
        self.all_stages = upstream_of(all_stages, until) if until else all_stages
        if shared is None:
            shared = {name: RunDir(root) for name, root in run.read_manifest().get("shared", {}).items()}
        # Only heavy stages are taken: a light one runs inside another job of the owner (jobs/units.py),
        # so waiting for it would wait for that whole job; this run recomputes it (seconds) instead.
        heavy = {stage.name for stage in self.all_stages if not is_light(stage, cfg)}
        self.shared = {name: owner for name, owner in shared.items() if name in heavy}
        self.stages = [stage for stage in self.all_stages if stage.name not in self.shared]
        # With a CPU partition, preparing the prompts (minutes of CPU for a million rows) is a CPU job
        # of its own beside detection, instead of holding the first synthesis tasks' GPUs meanwhile.
        self.units = scheduling_units(self.stages, cfg, ("prepare_prompts",) if profile.cpu_partition else ())

    def shared_inputs(self, unit: Unit) -> dict[str, str]:
        """The stages a job of `unit` takes from other runs of its study: stage -> that run."""
        from jobs.sharing import shared_inputs

        return {name: str(self.shared[name].root) for name in shared_inputs(self.all_stages, unit.stages(), self.shared)}

    # ------------------------------------------------------------------ what each job asks for

    def uses_launcher(self, stage: Stage) -> bool:
        """Training on GPUs (or CPU processes, see train_cpu_processes) runs `accelerate launch` once
        per node; everything else is one process."""
        return stage.name == "train" and self.profile.train_processes() > 0

    def request(self, stage: Stage) -> JobRequest:
        """What a job of this stage asks for: GPUs for GPU work, else CPUs (on the CPU partition
        when the site has one)."""
        p = self.profile
        gpus = p.stage_gpus(stage.name) if not is_light(stage, self.cfg) else 0
        nodes = p.train_nodes if self.uses_launcher(stage) else 1
        on_cpus = not gpus and bool(p.cpu_partition)
        account, qos = (p.cpu_account or p.account, p.cpu_qos) if on_cpus else (p.account, p.qos)
        return JobRequest(
            name=f"retmask-{self.cfg.name}-{stage.name}",
            queue=p.cpu_partition if on_cpus else p.partition,
            minutes=p.time_limit(stage.name),
            cpus=p.cpus_for(gpus),
            mem_gb=p.mem_per_gpu_gb * gpus if gpus else p.mem_gb,
            gpus=gpus, nodes=nodes, account=account, qos=qos,
            exclusive=nodes > 1,  # a multi-node run shares no node: its NCCL traffic would
            setup=tuple(p.setup), array_parallelism=p.array_parallelism, signal_delay_s=p.signal_delay_s)

    def parameters(self, stage: Stage) -> dict:
        return self.scheduler.parameters(self.request(stage))

    def _function(self, unit: Unit):
        """Checkpointable callables: a job cut by its time limit or preempted is requeued."""
        if self.uses_launcher(unit.stage):
            from jobs.launch import TrainingLaunch

            return TrainingLaunch(unit.before, unit.after, unit.waits_for, self.shared_inputs(unit))
        from jobs.runner import UnitTask

        return UnitTask(unit.before, unit.after, unit.waits_for, self.shared_inputs(unit))

    # ------------------------------------------------------------------ rendering (dry run, golden files)

    def render(self, unit: Unit, shards: int, dependency: list[str] | None = None, python: str = sys.executable,
               folder: str | None = None) -> str:
        """The script submitit would write for this unit, without submitting anything; `dependency`
        names the jobs it waits for (placeholders in a dry run)."""
        stage = unit.stage
        folder = folder or str(self.run.log_dir(stage.name) / "<attempt>")
        params = {**self.parameters(stage), **(self.scheduler.after(dependency) if dependency else {})}
        text = self.scheduler.render(params, folder, f"{python} -u -m submitit.core._submit {shlex.quote(folder)}",
                                     shards if stage.shards(self.cfg) > 1 else None)
        if unit.before or unit.after:
            text += "\n# each task runs, under the run's lock, once per run:\n"
            if unit.before:
                text += f"#   before its shard: {', '.join(unit.before)}\n"
            if unit.after:
                text += f"#   after its shard, once their inputs are all done: {', '.join(unit.after)}\n"
        if self.uses_launcher(stage):
            from jobs.launch import describe_launch

            text += "\n# each node's task then runs (machine rank read on that node):\n"
            text += "\n".join(f"#   {line}" for line in describe_launch(self.cfg, self.profile, str(self.run.root),
                                                                        python).splitlines()) + "\n"
        return text

    def graph(self) -> str:
        """The jobs, what each waits for and hosts, and the scheduler waits on the critical path."""
        from jobs.units import critical_waits, direct_waits

        lines = [f"# job graph: {len(self.units)} job(s) for {len(self.stages)} stage(s)"]
        for unit in self.units:
            request = self.request(unit.stage)
            shards = unit.stage.shards(self.cfg)
            gpus = f"{request.gpus} GPU(s)" + (f" x {request.nodes} nodes" if request.nodes > 1 else "") \
                if request.gpus else "no GPU"
            line = f"#   {unit.name:<20} {shards:>4} task(s)  {request.queue or '(no queue)'}  {gpus}"
            waits = direct_waits(self.units, unit)
            line += f"  after {', '.join(waits)}" if waits else ""
            line += f"; runs first {', '.join(unit.before)}" if unit.before else ""
            line += f"; then {', '.join(unit.after)}" if unit.after else ""
            taken = self.shared_inputs(unit)
            line += f"; takes {', '.join(taken)} from the study's run that computes them" if taken else ""
            lines.append(line)
        for owner in sorted({str(owner.root) for owner in self.shared.values()}):
            names = [name for name, run in self.shared.items() if str(run.root) == owner]
            lines.append(f"#   (computed by {owner}: {', '.join(names)})")
        waits = critical_waits(self.units, "detect" if any(u.name == "detect" for u in self.units) else None)
        lines.append(f"# scheduler waits on the critical path after detection: {waits}")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ planning and submission

    def plan(self, active: dict[str, set[int]] | None = None, force: bool = False, dry: bool = False) \
            -> list[StagePlan]:
        """What to submit: per unit, the shards neither done on disk (same fingerprint) nor active
        in the scheduler, and a CPU job for light stages no submitted or active job will run.
        Outputs of another fingerprint stop the plan unless `force` (a `dry` plan moves nothing)."""
        active = active or {}
        stale = {stage.name: self.run.stale_fingerprints(stage.name, self.prints[stage.name]) for stage in self.stages}
        stale = {name: prints for name, prints in stale.items() if prints}
        running = [name for name in stale if active.get(name)]
        if running and not dry:  # even with --force: a running shard of the old config would write into the new
            raise ConfigError(f"stage {running[0]}: outputs of another config while its shards "
                              f"{sorted(active[running[0]])} still run; let them end or cancel them, then resubmit")
        if stale and not force and not dry:
            name = next(iter(stale))
            raise ConfigError(f"stage {name}: outputs written under another config (fingerprint "
                              f"{', '.join(sorted(stale[name]))}, now {self.prints[name]}); rerun with --force to move "
                              "the whole stage aside and recompute it, or restore the config they were made with")
        if not dry:
            for name in stale:
                moved = self.run.supersede(name)
                self.log(f"[{name}] config changed: earlier outputs kept in {moved}")
        todo = {}
        for stage in self.stages:
            done = set() if stage.name in stale else self.run.done_shards(stage.name, self.prints[stage.name])
            todo[stage.name] = [k for k in range(stage.shards(self.cfg))
                                if k not in done and k not in active.get(stage.name, set())]
        plans = [StagePlan(unit, self.prints[unit.name], unit.stage.shards(self.cfg), todo[unit.name],
                           self.parameters(unit.stage)) for unit in self.units]
        # Light stages whose every host is done and idle: nothing would run them.
        working = {unit.name for unit in self.units if todo[unit.name] or active.get(unit.name)}
        leftover = [name for unit in self.units for name in unit.before + unit.after
                    if todo[name] and not any(host.name in working for host in self.units if name in host.stages())]
        leftover = [stage.name for stage in self.stages if stage.name in set(leftover)]
        if leftover:
            first = next(stage for stage in self.stages if stage.name == leftover[0])
            waits = tuple(unit.name for unit in self.units if unit.name in working)
            unit = Unit(first, after=tuple(leftover[1:]), waits_for=waits)
            plans.append(StagePlan(unit, self.prints[first.name], 1, [0], self.parameters(first)))
        return plans

    def submit(self, plans: list[StagePlan], outstanding: dict[str, list[str]] | None = None,
               max_array_size: int | None = None, parameter_updates: dict[str, dict] | None = None) -> dict:
        """Submit every plan with work, in graph order, each after its upstream jobs (afterok).

        `outstanding`: job ids, per stage, of earlier submissions still queued or running, which
        downstream jobs must also wait for. Each accepted job is recorded in the manifest at once;
        a refusal part way raises SubmissionCut, with what was queued recorded. Returns the manifest.
        """
        # Earlier jobs still queued or running are waited for task by task (their array may hold a
        # failed task, which an afterok on the whole array would never get past); new arrays whole.
        outstanding = {k: list(v) for k, v in (outstanding or {}).items()}
        limit = max_array_size or self.profile.max_array_size or self.scheduler.max_array_size()
        attempt = time.strftime("%Y%m%d-%H%M%S")
        manifest = self.record(plans)  # the graph first, so status reads the run even if nothing is accepted
        owner_waits = self.owner_waits({name for plan in plans if plan.todo for name in self.shared_inputs(plan.unit)})
        for plan in plans:
            if not plan.todo:
                continue
            waits = [job for dep in plan.unit.waits_for for job in outstanding.get(dep, [])]
            waits += [job for name in self.shared_inputs(plan.unit) for job in owner_waits[name]]
            plan.log_folder = str(self.run.log_dir(plan.stage.name) / attempt)
            executor = self.scheduler.executor(plan.log_folder)
            params = {**plan.parameters, **(parameter_updates or {}).get(plan.stage.name, {})}
            if waits:
                params.update(self.scheduler.after(waits))
            executor.update_parameters(**params)
            function = self._function(plan.unit)
            for part in chunks(plan.todo, limit):  # indices run 0..len-1 < MaxArraySize
                root, name = str(self.run.root), plan.stage.name
                try:
                    if self.uses_launcher(plan.stage):
                        jobs = [executor.submit(function, root)]
                    else:
                        jobs = executor.map_array(function, [root] * len(part), [name] * len(part), part)
                except Exception as error:  # the scheduler's refusal, whatever submitit wraps it in
                    queued = sum(len(p.job_ids) for p in plans)
                    raise SubmissionCut(
                        f"the scheduler refused the {name} job ({_last_line(error)}); {queued} job(s) queued before "
                        f"it are recorded in {self.run.manifest_path}. `retmask status` shows them, `retmask "
                        f"resume` submits the rest once the cause is fixed (e.g. a submit limit: after some "
                        "finish), `retmask cancel` withdraws them") from None
                for shard, job in zip(part, jobs):
                    plan.job_ids[shard] = str(job.job_id)
                plan.arrays.append(self.scheduler.base_id(str(jobs[0].job_id)))
                manifest = self.record([plan])
            outstanding[plan.stage.name] = outstanding.get(plan.stage.name, []) + plan.arrays
            hosted = f" (with {', '.join(plan.unit.before + plan.unit.after)})" if plan.unit.before + plan.unit.after else ""
            self.log(f"[{plan.stage.name}] submitted {len(plan.todo)} shard(s){hosted} as {', '.join(plan.arrays)}"
                     + (f" after {', '.join(sorted(set(waits)))}" if waits else ""))
        return manifest

    def owner_waits(self, names: set[str]) -> dict[str, list[str]]:
        """Per shared stage named, the owner's jobs still to end before this run can take it."""
        from jobs.sharing import owner_jobs

        by_name = {stage.name: stage for stage in self.all_stages}
        waits: dict[str, list[str]] = {}
        for owner in {self.shared[name].root for name in names}:  # one scheduler query per owner
            mine = {name: (self.prints[name], by_name[name].shards(self.cfg))
                    for name in names if self.shared[name].root == owner}
            waits.update(owner_jobs(RunDir(owner), mine))
        return waits

    def record(self, plans: list[StagePlan]) -> dict:
        """Merge these plans into the manifest: job ids per shard (newest last), for each light
        stage the jobs that run it, and the stages taken from other runs of a study."""
        manifest = self.run.read_manifest()
        manifest.update({"executor": self.scheduler.kind, "updated": time.time(),
                         "order": [s.name for s in self.all_stages], "profile": self.profile.__dict__})
        stages = manifest.setdefault("stages", {})
        if self.shared:
            manifest["shared"] = {name: str(owner.root) for name, owner in self.shared.items()}
        for stage in self.all_stages:
            if stage.name in self.shared:
                stages[stage.name] = {"fingerprint": self.prints[stage.name], "shards": stage.shards(self.cfg),
                                      "depends": list(stage.depends), "shared_from": str(self.shared[stage.name].root)}
        for plan in plans:
            entry = stages.setdefault(plan.stage.name, {})
            if entry.get("fingerprint") != plan.fingerprint:
                entry.clear()
            history = entry.setdefault("job_history", {})
            folders = entry.setdefault("log_folders", {})
            for shard, job_id in plan.job_ids.items():
                if not history.get(str(shard)) or history[str(shard)][-1] != job_id:
                    history.setdefault(str(shard), []).append(job_id)
                folders[str(shard)] = plan.log_folder
            entry.update({"fingerprint": plan.fingerprint, "depends": list(plan.stage.depends),
                          "shards": plan.shards, "parameters": plan.parameters,
                          "before": list(plan.unit.before), "after": list(plan.unit.after)})
            entry["job_ids"] = {shard: ids[-1] for shard, ids in history.items()}
            for name in plan.unit.before + plan.unit.after:
                light = stages.setdefault(name, {})
                if light.get("fingerprint") != self.prints[name]:
                    light.clear()
                hosts = set(light.get("runs_in", [])) | {plan.stage.name}
                light.update({"fingerprint": self.prints[name], "shards": 1, "runs_in": sorted(hosts),
                              "depends": list(next(s for s in self.stages if s.name == name).depends)})
        self.run.write_manifest(manifest)
        return manifest


def _last_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
