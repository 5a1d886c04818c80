"""Golden files of the sbatch scripts `retmask submit --dry-run` prints, for the two GPU cluster
shapes, and the job graph they form. Regenerate after an intended change with RETMASK_UPDATE_GOLDEN=1."""
import os
from pathlib import Path

import pytest
import yaml

from jobs.units import direct_waits
from jobs.profiles import load_profile
from jobs.cluster import ClusterPipeline
from retmask.config import ConfigError, ExperimentConfig, from_dict
from retmask.rundir import RunDir
from tests.conftest import REPO

GOLDEN = Path(__file__).parent / "golden"
SHAPES = {"slurm-4xh100-1x4": ["partition=gpu_h100", "account=proj-rm"],
          "slurm-8xh200-2x8": ["partition=rt_HG", "account=gxa50000", "qos=normal"],
          "tsubame4-h100-1x4": ["account=tga-retmask"],
          "tsubame4-h100-2x4": ["account=tga-retmask", "train_nodes=2"],
          "abci3-h200-1x8": ["account=gxa50000"],
          "abci3-h200-2x8": ["account=gxa50000", "train_nodes=2"]}
GPU_REQUEST = {"slurm": ("--gres=gpu", "--gpus-per-node"), "gridengine": ("-l node_f=", "-l gpu_1="),
               "pbs": ("-q rt_HF", "-q rt_HG")}


def paper_config() -> ExperimentConfig:
    data = yaml.safe_load((REPO / "configs" / "llama-3.1-8b-instruct.yaml").read_text())
    data["model"]["path"] = "/models/Meta-Llama-3.1-8B-Instruct"
    data["synthesis"]["prompts"] = "/data/lmsys-chat-1m-synth"
    data["detection"]["haystack"] = "/src/Retrieval_Head/haystack_for_detect"
    data["detection"]["needles"] = "/src/Retrieval_Head/haystack_for_detect/needles.jsonl"
    return from_dict(ExperimentConfig, data)


def rendered(shape: str) -> str:
    profile = load_profile(shape.rsplit("-", 1)[0], SHAPES[shape])
    cfg = paper_config()
    pipeline = ClusterPipeline(cfg, RunDir("/scratch/runs/example"), profile)
    texts = [pipeline.graph()]
    for unit in pipeline.units:
        waits = direct_waits(pipeline.units, unit)
        dependency = [f"<{d}>" for d in waits] if waits else None
        texts.append(f"# ===== {unit.name} =====\n" + pipeline.render(
            unit, unit.stage.shards(cfg), dependency, python="python", folder=f"/scratch/runs/example/logs/{unit.name}"))
    return "\n".join(texts)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_sbatch_scripts_match_golden_files(shape):
    text = rendered(shape)
    path = GOLDEN / f"{shape}.sbatch"
    if os.environ.get("RETMASK_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"rendered sbatch differs from {path}; rerun with RETMASK_UPDATE_GOLDEN=1"


def test_golden_scripts_carry_what_a_cluster_needs():
    one = (GOLDEN / "slurm-4xh100-1x4.sbatch").read_text()
    two = (GOLDEN / "slurm-8xh200-2x8.sbatch").read_text()
    assert "#SBATCH --gres=gpu:h100:4" in one and "--num_machines 1 --num_processes 4" in one
    assert "per-device batch 2 x gradient accumulation 64 x 4 GPUs" in one  # the authors' Llama-3.1 launch
    train = two.split("# ===== train =====")[1].split("# =====")[0]
    assert "#SBATCH --nodes=2" in train and "#SBATCH --ntasks-per-node=1" in train
    assert "#SBATCH --gpus-per-node=8" in train and "#SBATCH --account=gxa50000" in train
    assert "--machine_rank $SLURM_NODEID" in train  # read on each node, not once in the script
    assert "--kill-on-bad-exit=1" in train  # a node whose peer died does not wait in its collectives
    assert "--kill-on-bad-exit" not in one  # one node: nothing to wait for
    assert "gradient accumulation 16 x 16 GPUs" in train
    assert "#SBATCH --array=0-63%64" in two and "--signal=USR2@120" in two
    for shape, request, remote in (("tsubame4-h100-2x4", "#$ -l node_f=2", "qrsh -inherit -nostdin"),
                                   ("abci3-h200-2x8", "#PBS -l select=2", "pbs_tmrsh")):
        train = (GOLDEN / f"{shape}.sbatch").read_text().split("# ===== train =====")[1].split("# =====")[0]
        assert request in train and f'else {remote} "$host" /bin/bash "$node_task" "$rank" &' in train, shape
        assert "--num_machines 2" in train and "--machine_rank $RETMASK_NODE_RANK" in train, shape
    for stage in ("detect", "synthesize_chosen", "synthesize_rejected", "evaluate"):  # one GPU per array task
        script = one.split(f"# ===== {stage} =====")[1].split("# =====")[0]
        assert "#SBATCH --gres=gpu:h100:1" in script and "#SBATCH --mem=120GB" in script, stage


def test_global_batch_stays_512_whatever_the_node_count():
    from retmask.training import gradient_accumulation

    for nodes, gpus in ((1, 4), (2, 4), (1, 8), (2, 8), (4, 8)):
        steps = gradient_accumulation(512, 1, nodes * gpus)
        assert steps * nodes * gpus == 512
    with pytest.raises(Exception, match="not a multiple"):
        gradient_accumulation(512, 3, 8)


def test_profile_errors_come_before_anything_is_submitted():
    with pytest.raises(ConfigError, match="partition: missing"):
        load_profile("slurm-8xh200")
    with pytest.raises(ConfigError, match="unknown key; allowed keys"):
        load_profile("slurm-8xh200", ["partiton=x"])
    # SLURM reads a limit of 0 as UNLIMITED and wraps a negative one into thousands of days
    for minutes in (0, -5):
        with pytest.raises(ConfigError, match=f"time_limit_min.train: {minutes} minutes; give a positive number"):
            load_profile("slurm-8xh200", ["partition=p", f"time_limit_min.train={minutes}"])
    # a plain Grid Engine PE may put a job's slots on any hosts: several nodes need a whole-node type,
    # or a PE of a fixed slot count per host
    with pytest.raises(ConfigError, match="needs resource_types naming a whole-node type .* or node_parallel_environment"):
        load_profile("local-gridengine", ["train_nodes=2", "gpus_per_node=4"])


def test_a_plain_grid_engine_asks_for_several_nodes_as_slots_of_its_node_parallel_environment():
    profile = load_profile("local-gridengine-two-nodes", ["train_nodes=2", "cpus_per_task=3"])
    pipeline = ClusterPipeline(from_dict(ExperimentConfig, {"name": "t", "model": {"path": "/m"}}),
                               RunDir("/scratch/runs/t"), profile)
    train = next(unit for unit in pipeline.units if unit.stage.name == "train")
    script = pipeline.render(train, 1, folder="/scratch/runs/t/logs/train/1")
    # 2 nodes x 3 CPUs: 6 slots of PE node, whose allocation_rule (3 a host, checked at submit) makes them 2 hosts
    assert "#$ -pe node 6" in script and "qrsh -inherit -nostdin" in script, script
    detect = next(unit for unit in pipeline.units if unit.stage.name == "detect")
    assert "#$ -pe smp 3" in pipeline.render(detect, 1, folder="/scratch/runs/t/logs/detect/1")  # one host's CPUs: the ordinary PE


def test_gpus_per_task_names_a_gpu_stage_and_fits_the_node():
    profile = load_profile("slurm-4xh100", ["partition=p", "gpus_per_task.synthesize_chosen=4"])
    assert profile.stage_gpus("synthesize_chosen") == 4 and profile.stage_gpus("detect") == 1
    assert profile.stage_gpus("train") == 4 and profile.stage_gpus("pairs") == 0
    with pytest.raises(ConfigError, match=r"gpus_per_task.detect: 8 GPUs; expected 1..gpus_per_node \(4\)"):
        load_profile("slurm-4xh100", ["partition=p", "gpus_per_task.detect=8"])
    with pytest.raises(ConfigError, match=r"'train' is not one of .* \(training always takes every GPU"):
        load_profile("slurm-4xh100", ["partition=p", "gpus_per_task.train=1"])


def test_the_paper_config_waits_three_times_after_detection_and_queues_no_gpu_less_job_on_gpus():
    for shape in SHAPES:
        text = (GOLDEN / f"{shape}.sbatch").read_text()
        assert "# scheduler waits on the critical path after detection: 3" in text
        scripts = text.split("# ===== ")[1:]
        kind = load_profile(shape.rsplit("-", 1)[0], SHAPES[shape]).kind
        assert len(scripts) == 6 and all(any(ask in script for ask in GPU_REQUEST[kind]) for script in scripts)
        for light in ("merge_scores", "select_heads", "mask", "prepare_prompts", "pairs", "report"):
            assert f"# ===== {light} =====" not in text and light in text.split("# ===== ")[0]


def test_a_cpu_partition_takes_the_prompt_preparation_as_a_cpu_job():
    profile = load_profile("slurm-4xh100", SHAPES["slurm-4xh100-1x4"] + ["cpu_partition=cpu", "cpu_qos=cpu-normal"])
    pipeline = ClusterPipeline(paper_config(), RunDir("/scratch/runs/example"), profile)
    prepare = next(unit for unit in pipeline.units if unit.name == "prepare_prompts")
    params = pipeline.parameters(prepare.stage)
    assert params["partition"] == "cpu" and params["qos"] == "cpu-normal" and params["account"] == "proj-rm"
    assert "gres" not in params and params["cpus_per_task"] == profile.cpus_per_task
    chosen = next(unit for unit in pipeline.units if unit.name == "synthesize_chosen")
    assert chosen.waits_for == ("prepare_prompts",) and "prepare_prompts" not in chosen.before
    assert "# scheduler waits on the critical path after detection: 3" in pipeline.graph()


def test_a_stage_holding_shards_of_two_configs_is_refused_then_moved_aside_whole_with_force(tmp_path):
    """A shard of the earlier config finished after the config changed: the stage's first marker is of
    the new config, another of the old. Every marker counts: refused without --force, refused even with
    it while one of its shards runs, and with it the whole stage is moved aside and planned anew."""
    cfg = paper_config()
    run = RunDir(tmp_path / "run")
    pipeline = ClusterPipeline(cfg, run, load_profile("slurm-4xh100", SHAPES["slurm-4xh100-1x4"]), log=lambda line: None)
    current = pipeline.prints["synthesize_chosen"]
    run.mark_done("synthesize_chosen", 0, current, 1.0)
    run.mark_done("synthesize_chosen", 1, "the-earlier-config", 1.0)
    with pytest.raises(ConfigError, match="stage synthesize_chosen: outputs written under another config "
                                          "\\(fingerprint the-earlier-config, now"):
        pipeline.plan()
    with pytest.raises(ConfigError, match=r"synthesize_chosen: outputs of another config while its shards \[5\] still"):
        pipeline.plan({"synthesize_chosen": {5}}, force=True)
    plans = {plan.unit.name: plan for plan in pipeline.plan(force=True)}
    assert plans["synthesize_chosen"].todo == list(range(64))  # shard 0 of the new config too: the stage is redone
    assert not run.stage_dir("synthesize_chosen").exists() and len(list((run.root / "superseded").iterdir())) == 1
