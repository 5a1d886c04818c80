"""The run's verdict on itself, from its pairs statistics and training log."""
from analysis.health import judge


def log(margins, accuracies, losses=None):
    losses = losses or [0.693] * len(margins)
    return [{"step": i + 1, "loss": loss, "rewards/margins": m, "rewards/accuracies": a}
            for i, (loss, m, a) in enumerate(zip(losses, margins, accuracies))]


def test_the_degenerate_run_of_the_report_is_called_what_it_is():
    """7 pairs of 128 prompts, 2 steps, loss and margins flat: the run a fresh machine once gave."""
    health = judge({"prompts": 128, "pairs": 7, "kept_empty_rejected": 0}, log([0.0, 0.0], [0.0, 0.0]), "dpo", 2)
    assert not health.learned
    assert health.line == ("7 pairs from 128 prompts (5%; 0 with an empty rejected response), 2 DPO steps, "
                           "loss 0.693 → 0.693, margins 0.000 → 0.000, final reward accuracy 0.00")
    assert health.verdict == ("DPO did NOT learn: too few pairs: 7 of 128 prompts (see the drop counts); only 2 "
                              "optimizer steps (need at least 4: more pairs, epochs or a smaller global batch); "
                              "flat margins (0.000 → 0.000); reward accuracy at chance or below. "
                              "This run is not a result.")


def test_rising_margins_and_accuracy_over_enough_steps_is_learning():
    margins = [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5]
    health = judge({"prompts": 128, "pairs": 128, "kept_empty_rejected": 120}, log(margins, [0.0] + [1.0] * 7),
                   "dpo", 8)
    assert health.learned and health.verdict == "DPO learned"
    assert health.margins == (0.0, 0.475)  # the last quarter's mean: single steps are noisy


def test_learning_on_few_surviving_pairs_is_flagged_but_not_denied():
    margins = [0.0, 0.1, 0.2, 0.3]
    health = judge({"prompts": 100, "pairs": 40, "kept_empty_rejected": 0}, log(margins, [1.0] * 4), "dpo", 4)
    assert health.learned
    assert health.verdict == "DPO learned (but: too few pairs: 40 of 100 prompts (see the drop counts))"


def test_sft_is_judged_by_its_loss():
    rows = [{"step": i, "loss": loss} for i, loss in enumerate([2.0, 1.5, 1.0, 0.8])]
    assert judge({"prompts": 10, "pairs": 10}, rows, "sft", 4).verdict == "SFT learned"
    flat = [{"step": i, "loss": 1.0} for i in range(4)]
    assert judge({"prompts": 10, "pairs": 10}, flat, "sft", 4).verdict.startswith("SFT did NOT learn: the loss")
