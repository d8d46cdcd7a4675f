"""The sentiment task's held-out gold scorer: its hand-computed values, and that the trainer logs it beside the
reward without ever training on it (the reward and the advantages are the reward model's alone)."""

from ui_fixtures import require_model

from labcore import config as C
from labcore.rewards import sentiment_gold
from labcore.tasks import get_task


def test_gold_on_hand_made_reviews():
    reviews = ["great and the staff was friendly",   # two distinct positives, ended: 2
               "great great great great",            # one positive, 3 repeats, never ended: 1 - 1.5 - 1
               "terrible",                           # one negative: -1
               "great and the food was very rude",   # +1 - 1
               "very very great and the food was great but the view was amazing lovely perfect"]  # capped 2, 1 repeat
    assert sentiment_gold([""] * 5, reviews, eos=[True, False, True, True, True]) == [2.0, -1.5, -1.0, 0.0, 1.5]
    assert sentiment_gold([""], ["great"]) == [1.0], "without an eos column every review counts as ended"


def test_the_trainer_logs_gold_and_never_trains_on_it():
    require_model()
    from labcore.trainer import Trainer

    assert get_task("sentiment").gold is sentiment_gold and get_task("arithmetic").gold is None
    cfg = C.build("grpo", {"rollout.task": "sentiment", "rollout.prompts_per_step": 2,
                           "rollout.samples_per_prompt": 4, "rollout.max_new_tokens": 8, "run.grad_variance": False})
    t = Trainer(cfg)
    m = t.train_step().metrics
    assert "reward/gold/mean" in m and -4 <= m["reward/gold/mean"] <= 2
    rm = [k for k in m if k.startswith("reward/") and k.count("/") == 2 and k != "reward/gold/mean"]
    assert len(rm) == 1 and abs(m[rm[0]] - m["reward/mean"]) < 1e-5, "the reward is the reward model's alone"
    arith = Trainer(C.build("grpo", {"rollout.prompts_per_step": 2, "rollout.samples_per_prompt": 2,
                                     "rollout.max_new_tokens": 4, "run.grad_variance": False}))
    assert "reward/gold/mean" not in arith.train_step().metrics
