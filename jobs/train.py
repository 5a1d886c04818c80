"""Stage: DPO on the pairs with TRL; the trained model is saved as an ordinary HF checkpoint."""
from __future__ import annotations

from jobs.pairs import pairs_dir
from retmask.config import ExperimentConfig
from retmask.io import atomic_directory, write_json
from retmask.rundir import RunDir


def trained_model_dir(run: RunDir):
    return run.stage_dir("train") / "model"


def train_log_path(run: RunDir):
    return run.stage_dir("train") / "train_log.jsonl"


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    import datasets

    from retmask.dpo import build_dpo_trainer
    from retmask.generation import load_model

    model, tokenizer = load_model(cfg.model.path, cfg.model.dtype)
    tokenizer.padding_side = "right"
    dataset = datasets.load_from_disk(str(pairs_dir(run) / "dataset"))
    log_path = train_log_path(run)
    log_path.unlink(missing_ok=True)  # a rerun of this shard logs afresh
    trainer = build_dpo_trainer(model, tokenizer, dataset, cfg.train, run.stage_dir("train") / "trainer", log_path)
    result = trainer.train()
    with atomic_directory(trained_model_dir(run)) as tmp:
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    write_json(run.stage_dir("train") / "summary.json", {"global_step": trainer.state.global_step,
                                                         "train_loss": result.training_loss,
                                                         "pairs": len(dataset)})
