"""The `retmask` command."""
from __future__ import annotations

import errno
import logging
import os
import re
import shlex
import signal
import sys
import time
from pathlib import Path

from jobs.cli_parser import build_parser
from jobs.runner import record_config
from retmask.config import NO_TRACKER, ConfigError, ExperimentConfig, load_config
from retmask.errors import UserError


def _fail(message: str) -> int:
    print(f"retmask: error: {message}", file=sys.stderr)
    return 2


def cmd_toy_model(args) -> int:
    from retmask.toy.recipe import ToyModelConfig
    from retmask.toy.train import train_toy_model

    out = Path(args.out_dir)
    if out.exists() and any(out.iterdir()):
        return _fail(f"{out} exists and is not empty; give a new directory (nothing is overwritten)")
    recipe = ToyModelConfig(seed=args.seed, **({"steps": args.steps} if args.steps else {}))
    summary = train_toy_model(recipe, out, on_progress=lambda progress: print(f"toy model {progress.line()}", flush=True))
    print(f"toy model saved to {out}: held-out exact copy {summary['held_out_exact_match']:.3f}, "
          f"{summary['train_seconds']} s")
    return 0


def cmd_run(args) -> int:
    cfg = load_config(args.config, args.set or [])
    if args.run_dir:
        cfg.run_dir = args.run_dir
    if args.rehearse:
        cfg = _rehearsal_of(cfg)
    report = None if args.until else (lambda run: f"report: {run.report_dir / 'index.md'}")
    return _run_locally(cfg, args.until, args.max_parallel, report, args.progress_every)


def _run_locally(cfg, until: str | None, max_parallel: int, report=None, progress_every: float = 30.0) -> int:
    """Run the stages up to `until` in local processes; `report(run)` says where the results are.
    Progress: redrawn in place on a terminal, else a plain line per running stage every
    `progress_every` seconds."""
    from jobs.local import LocalPipeline, PipelineFailed
    from jobs.profiles import load_profile
    from jobs.progress_view import ProgressView

    from jobs.control import refuse_a_second_driver
    from retmask.rundir import RunDir

    profile = load_profile(cfg.execution.cluster)  # every check passes before anything is written
    _check_inputs(cfg)
    refuse_a_second_driver(RunDir(cfg.run_dir), "local")
    run = record_config(cfg)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so running shards are cancelled too
    started = time.perf_counter()
    print(f"run directory: {run.root}")
    try:
        view = ProgressView(every_s=progress_every, terminal=sys.stdout if sys.stdout.isatty() else None)
        pipeline = LocalPipeline(cfg, run, timeout_min=profile.timeout_min, until=until, view=view)
        pipeline.execute(max_parallel or profile.max_parallel)
    except PipelineFailed as error:
        return _fail(str(error))
    done = report(run) if report else f"outputs under {run.root / 'stages'}"
    print(f"finished in {time.perf_counter() - started:.1f}s; {done}")
    if (run.stage_dir("train") / "summary.json").is_file():
        from analysis.health import run_health

        health = run_health(run)
        print(f"health: {health.line}\nverdict: {health.verdict}")
    return 0


def _check_inputs(cfg, out=None) -> None:
    """What can be checked here, before any stage starts: the trackers, the installed TRL,
    detection's NIAH instances, the prompts."""
    from jobs.stages import detect, prompts, train

    out = out or sys.stdout  # looked up now: a default bound at import would keep a replaced stream
    if cfg.train.report_to != [NO_TRACKER]:  # a tracker's name is checked here, not when training starts
        from retmask.tracking import check_report_to

        check_report_to(cfg.train.report_to)

    train.check_inputs(cfg)
    count = detect.check_inputs(cfg)
    if count is not None:
        print(f"{count} NIAH instances for detection", file=out)
    rows = prompts.check_inputs(cfg)
    if rows is not None:
        print(f"{rows} prompt rows for synthesis (before filters)", file=out)


def _cluster_profile(args):
    """The cluster profile named by --cluster, with --profile-set overrides."""
    from jobs.profiles import load_profile

    profile = load_profile(args.cluster, args.profile_set or [])
    if profile.kind == "local":
        raise ConfigError(f"profile {args.cluster!r} is not a cluster profile; run without --cluster (or use "
                          "`retmask run`) to run locally")
    return profile


def cmd_submit(args) -> int:
    cfg = load_config(args.config, args.set or [])
    if args.run_dir:
        cfg.run_dir = args.run_dir
    if args.rehearse:
        cfg = _rehearsal_of(cfg, out=sys.stderr if args.dry_run else sys.stdout, profile=_cluster_profile(args))
    return _submit(cfg, args, until=args.until)


def _rehearsal_of(cfg: ExperimentConfig, out=None, profile=None) -> ExperimentConfig:
    """The experiment's rehearsal (its inputs are checked as the rehearsal's, its NIAH grid as the
    real one); its training takes as many processes as the profile's training job."""
    from jobs.rehearse import record_rehearsal, rehearse_experiment, training_world

    out = out or sys.stdout
    rehearsal = rehearse_experiment(cfg, log=lambda line: print(line, file=out, flush=True),
                                    world_size=training_world(profile) if profile else 1)
    record_rehearsal(cfg, rehearsal)
    return rehearsal


def _submit(cfg, args, until: str | None) -> int:
    """Submit the stages up to `until` with the --cluster, --profile-set, --dry-run and --force flags."""
    from jobs import control
    from jobs.schedulers import scheduler_for
    from retmask.rundir import RunDir

    profile = _cluster_profile(args)
    _check_inputs(cfg, out=sys.stderr if args.dry_run else sys.stdout)  # a dry run prints only scripts
    if args.dry_run:
        print(control.dry_run(cfg, RunDir(cfg.run_dir), profile, until=until))
        return 0
    scheduler_for(profile).check(profile)  # before anything is written
    run = RunDir(cfg.run_dir)
    control.submit(cfg, run, profile, force=args.force, until=until)  # writes the config once its checks pass
    print(follow_hint(run.root))
    return 0


def follow_hint(run_root: Path) -> str:
    """What to type next, pasteable as printed: the path quoted for the shell."""
    return f"queued; follow with: retmask status {shlex.quote(str(run_root))}"


def _run_of(path: str):
    from retmask.rundir import RunDir

    run = RunDir(path)
    if not run.manifest_path.is_file():
        raise ConfigError(f"{path} is not a run directory (no manifest.json)")
    return run


def cmd_status(args) -> int:
    from jobs.status import format_status, run_status, watch
    from jobs.study import plan_file

    if plan_file(Path(args.run)).is_file():  # a study directory: a line per run
        from jobs.study_cluster import study_status

        print(study_status(Path(args.run), query_scheduler=not args.disk_only))
        return 0
    run = _run_of(args.run)
    if args.watch:
        if args.interval <= 0:
            raise ConfigError(f"--interval: {args.interval} seconds; give a positive number")
        try:
            watch(run, args.interval, not args.disk_only, write=lambda text: print(text, flush=True),
                  terminal=sys.stdout.isatty())
        except KeyboardInterrupt:
            pass
        return 0
    stages, source = run_status(run, query_scheduler=not args.disk_only)
    print(format_status(stages, source))
    return 0


def cmd_plan(args) -> int:
    from jobs.plan import format_plan, plan
    from retmask.rundir import RunDir

    cfg = load_config(args.config, args.set or [])
    profile = _cluster_profile(args)
    jobs, notes = plan(cfg, profile, RunDir(args.pilot) if args.pilot else None)
    print(format_plan(jobs, notes, profile, args.cluster))
    return 0


def cmd_resume(args) -> int:
    from jobs import control
    from jobs.profiles import ClusterProfile
    from jobs.runner import load_run_config
    from retmask.config import from_dict

    run = _run_of(args.run)
    cfg = load_run_config(run)
    manifest = run.read_manifest()
    if args.cluster:
        from jobs.profiles import load_profile

        profile = load_profile(args.cluster, args.profile_set or [])
    else:  # the profile the run was submitted with
        profile = from_dict(ClusterProfile, manifest.get("profile", {}), key="profile")
    control.resume(cfg, run, profile, force=args.force, time_factor=args.time_factor, mem_factor=args.mem_factor)
    return 0


def cmd_cancel(args) -> int:
    from jobs import control

    control.cancel(_run_of(args.run))
    return 0


def cmd_logs(args) -> int:
    from jobs import control

    print(control.failed_logs(_run_of(args.run), tail=args.tail))
    return 0


def cmd_report(args) -> int:
    from analysis.compare import write_comparison

    index = write_comparison([Path(p) for p in args.runs], Path(args.out), latex=args.latex)
    print(f"comparison of {len(args.runs)} run(s) written: {index}")
    return 0


def cmd_study(args) -> int:
    from analysis.study_report import summary_lines
    from jobs.study import run_studies

    files = _study_files(args)
    if args.cluster:
        return _submit_study(files, args)
    if args.dry_run or args.force:
        raise ConfigError(f"{'--dry-run' if args.dry_run else '--force'} is for a study on a cluster: add --cluster "
                          "PROFILE (a study here reuses what is done and moves outputs of another config aside itself)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    _print_study_dirs(files, args.rehearse)
    reports, failed = run_studies(files, development=args.development, log=lambda line: print(line, flush=True),
                                  rehearse=args.rehearse)
    for report, took in reports:
        print("\n".join([f"== {report.parent.parent.name}: its runs finished after {took:.1f}s",
                          *summary_lines(report.parent.parent)]))
    print(f"finished in {time.perf_counter() - started:.1f}s; report{'s' if len(reports) > 1 else ''}: "
          + ", ".join(str(report) for report, _ in reports))
    if failed:
        return _fail(f"{len(failed)} run(s) failed; rerun the same command to resume them:\n" +
                     "\n".join(f"  {error}" for error in failed.values()))
    return 0


def _study_files(args) -> list:
    """Each study file of the command line, loaded and checked, with its directory."""
    from jobs.study import StudyFile
    from retmask.study_config import load_study

    if args.dir and len(args.configs) > 1:
        raise ConfigError(f"--dir names one study's directory; {len(args.configs)} studies were given (each goes to "
                          "runs/<its name>)")
    files = []
    for path in args.configs:
        study, experiment, base = load_study(path, args.set or [])
        study_dir = Path(args.dir or Path("runs") / (experiment.get("name") or Path(path).stem)).absolute()
        files.append(StudyFile(study, experiment, base, study_dir / "development" if args.development else study_dir))
    return files


def _print_study_dirs(files, rehearse: bool) -> None:
    from retmask.rehearsal import rehearsal_dir

    for file in files:
        print(f"study directory: {rehearsal_dir(file.dir) if rehearse else file.dir}", flush=True)


def _submit_study(files, args) -> int:
    """`retmask study --cluster`: submit the runs, or go on with them; each report once its runs are done."""
    from analysis.study_report import summary_lines
    from jobs.schedulers import scheduler_for
    from jobs.study_cluster import dry_run_studies, submit_studies

    profile = _cluster_profile(args)
    if args.dry_run:
        print(dry_run_studies(files, args.development, profile, args.rehearse))
        return 0
    scheduler_for(profile).check(profile)  # before anything is written
    _print_study_dirs(files, args.rehearse)
    reports = submit_studies(files, args.development, profile, force=args.force,
                             log=lambda line: print(line, flush=True), check_inputs=_check_inputs,
                             rehearse=args.rehearse)
    for report in reports:
        if report is not None:
            print("\n".join([f"== {report.parent.parent.name}", *summary_lines(report.parent.parent)]))
            print(f"every run finished; report: {report}")
    return 0


def _parse_lengths(text: str) -> list[int]:
    try:
        start, end, count = (int(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(f"--lengths {text!r}: expected START:END:COUNT, e.g. 1000:8000:4") from None
    return [start, end, count]


def detection_config(args):
    """A detection-only experiment from the `detect` flags; its run directory is --out."""
    from retmask.config import from_dict, resolve

    if not (Path(args.model) / "config.json").is_file():
        raise ConfigError(f"--model {args.model}: not a local HF checkpoint directory (no config.json); models "
                          "are never downloaded")
    out = Path(args.out)
    name = "detect-" + (re.sub(r"[^A-Za-z0-9._-]", "-", out.resolve().name) or "scores")
    data = {
        "name": name, "run_dir": str(out),
        "model": {"path": args.model, "dtype": args.dtype},
        "detection": {"haystack": args.haystack, "needles": args.needles, "template": args.template,
                      "lengths": _parse_lengths(args.lengths), "depths": args.depths,
                      "max_new_tokens": args.max_new_tokens, "rouge_threshold": args.rouge_threshold,
                      "shards": args.shards},
        "selection": {"tau": args.tau},
    }
    return resolve(from_dict(ExperimentConfig, data), base=Path.cwd(), detection_only=True)


def cmd_detect(args) -> int:
    """Detection alone for any local HF causal LM: the pipeline's detect and merge_scores stages, run
    here (local processes) or submitted to a cluster, so status, resume and logs work on it too."""
    cfg = detection_config(args)
    until = "merge_scores"
    if args.cluster:
        return _submit(cfg, args, until=until)
    return _run_locally(cfg, until=until, max_parallel=args.max_parallel, report=_print_scores)


def _print_scores(run) -> str:
    from retmask.io import read_json

    scores_dir = run.stage_dir("merge_scores")
    for name, score in read_json(scores_dir / "summary.json")["ranked"][:10]:
        print(f"{name}\t{score:.4f}")
    return f"scores: {scores_dir / 'retrieval_scores.json'}"


def cmd_mask(args) -> int:
    from retmask.io import read_json
    from retmask.masking import heads_from_names, write_masked_checkpoint

    if bool(args.heads) == bool(args.heads_file):
        return _fail("give exactly one of --heads L3-H7,L2-H1 or --heads-file heads.json")
    names = args.heads.split(",") if args.heads else read_json(args.heads_file)["heads"]
    out = Path(args.out)
    if out.exists():
        return _fail(f"{out} exists; give a new directory (nothing is overwritten)")
    write_masked_checkpoint(args.model, heads_from_names(names), out, pattern=args.o_proj_pattern)
    print(f"masked checkpoint ({len(names)} heads) written to {out}")
    return 0


COMMANDS = {"toy-model": cmd_toy_model, "run": cmd_run, "study": cmd_study, "submit": cmd_submit, "plan": cmd_plan,
            "status": cmd_status, "resume": cmd_resume, "cancel": cmd_cancel, "logs": cmd_logs, "report": cmd_report,
            "detect": cmd_detect, "mask": cmd_mask}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UserError, FileNotFoundError) as error:
        return _fail(str(error))
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        return _fail(f"no space left on the device writing {error.filename or 'a file'}: what finished is safe (every "
                     "output is written whole, then renamed into place); free some space and rerun the same command")


if __name__ == "__main__":
    sys.exit(main())
