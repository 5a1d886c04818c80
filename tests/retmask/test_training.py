import json

import datasets
import pytest

from retmask.config import TrainConfig
from retmask.training import TrainingError, check_trl_support, common_arguments, drop_checkpoints


def test_checkpoints_kept_are_bounded(tmp_path):
    assert common_arguments(TrainConfig(), tmp_path, 1, use_cpu=True)["save_total_limit"] == 2
    assert common_arguments(TrainConfig(save_total_limit=0), tmp_path, 1, use_cpu=True)["save_total_limit"] is None


def test_sft_trains_at_its_own_rate_down_to_the_same_share(toy_model_dir, tmp_path):
    from retmask.generation import load_model
    from retmask.sft import build_sft_trainer

    model, tokenizer = load_model(str(toy_model_dir), "float32", for_training=True)
    rows = [{"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "hello"}]}]
    train = TrainConfig(global_batch_size=1, bf16=False, gradient_checkpointing=False)
    trainer = build_sft_trainer(model, tokenizer, datasets.Dataset.from_list(rows), train, tmp_path / "t",
                                tmp_path / "log.jsonl")
    assert trainer.args.learning_rate == train.sft_learning_rate == 5e-6
    assert trainer.args.lr_scheduler_kwargs["min_lr_rate"] == pytest.approx(0.1)


def test_precomputed_reference_under_zero2_needs_trl_1_9(tmp_path):
    zero2 = tmp_path / "zero2.json"
    zero2.write_text(json.dumps({"zero_optimization": {"stage": 2}}))
    train = TrainConfig(precompute_ref_log_probs=True, deepspeed=str(zero2))
    with pytest.raises(TrainingError, match=r"needs TRL >= 1.9 .* TRL 1.8.1 is installed"):
        check_trl_support(train, "1.8.1")
    check_trl_support(train, "1.9.0")
    check_trl_support(TrainConfig(precompute_ref_log_probs=True), "1.0.0")  # no ZeRO: any TRL


def test_the_papers_regime_needs_a_trl_that_still_keeps_the_end():
    with pytest.raises(TrainingError, match="trl-0.24 truncates keeping the end, which TRL 2.0.0 no longer has"):
        check_trl_support(TrainConfig(regime="trl-0.24"), "2.0.0")
    check_trl_support(TrainConfig(regime="trl-0.24"), "1.16.0")
    check_trl_support(TrainConfig(), "2.0.0")


def test_liger_kernels_need_the_package_and_a_trl_that_still_takes_them():
    liger = TrainConfig(use_liger_kernel=True)
    with pytest.raises(TrainingError, match=r"needs liger-kernel >= 0.8.2; it is not installed: pip install"):
        check_trl_support(liger, "1.16.0", None)
    with pytest.raises(TrainingError, match=r"it 0.7.0 is installed"):
        check_trl_support(liger, "1.16.0", "0.7.0")
    with pytest.raises(TrainingError, match=r"TRL 2.0.0 no longer takes it"):
        check_trl_support(liger, "2.0.0", "0.8.5")
    check_trl_support(liger, "1.16.0", "0.8.5")


def test_liger_kernels_are_refused_where_training_has_no_gpu(tmp_path):
    from retmask.training import common_arguments

    with pytest.raises(TrainingError, match="Triton kernels for CUDA GPUs"):
        common_arguments(TrainConfig(use_liger_kernel=True), tmp_path, 1, use_cpu=True)
    assert common_arguments(TrainConfig(use_liger_kernel=True), tmp_path, 1, use_cpu=False)["use_liger_kernel"]


def test_the_papers_regime_is_checked():
    from retmask.config import ConfigError

    with pytest.raises(ConfigError, match="regime"):
        TrainConfig(regime="trl").validate("train")
    with pytest.raises(ConfigError, match="max_prompt_length"):
        TrainConfig(regime="trl-0.24", max_length=512, max_prompt_length=512).validate("train")


def test_spent_checkpoints_go_with_those_a_kill_left_half_deleted(tmp_path):
    for name in ("checkpoint-2", "checkpoint-4", ".deleting-checkpoint-1"):
        (tmp_path / name / "global_step2").mkdir(parents=True)
        (tmp_path / name / "trainer_state.json").write_text("{}")
    (tmp_path / "runs").mkdir()  # anything else the trainer wrote stays
    drop_checkpoints(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
