from retmask.evaluation import token_budget_batches


def test_batches_stay_within_the_token_budget_and_cover_every_prompt():
    lengths = [100, 3000, 120, 2900, 110, 9000]
    batches = token_budget_batches(lengths, max_new_tokens=16, budget=6100)
    assert sorted(i for batch in batches for i in batch) == list(range(6))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * (max(lengths[i] for i in batch) + 16) <= 6100
    assert [5] in batches  # over the budget alone: a batch of its own, never dropped
    assert any(len(batch) == 3 for batch in batches)  # short prompts share a batch


def test_the_default_budget_runs_128k_prompts_one_at_a_time():
    from retmask.evaluation_config import EvaluationConfig

    budget = EvaluationConfig().batch_tokens
    assert token_budget_batches([131072, 131072], 32, budget) == [[0], [1]]
    assert len(token_budget_batches([32768] * 8, 32, budget)) == 2
