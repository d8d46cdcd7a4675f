"""The clip-growth probe (labcore.lesson_probes.clip_growth_probe, DAPO fig. 3a): two updates of the same batch
from the same weights and optimiser state, one per upper clip. Run on a real tiny trainer, one or two batches."""

import dataclasses

import pytest
import torch

from labcore import lesson_probes
from labcore import lessons as L


def _quick():
    lesson = dataclasses.replace(L.load_lesson(L.lessons_dir() / "unshipped" / "clip_growth.toml"), probe_batches=1)
    arm = lesson.arms[0]
    return lesson, dataclasses.replace(arm, overrides={**arm.overrides, "algorithm.epochs": 2})


def test_equal_clips_give_equal_updates(monkeypatch):
    """With both 'arms' at the same clip the two updates start from restored weights and Adam state, so they are
    the same update: every paired difference is exactly 0. It fails if the probe does not restore the trainer."""
    monkeypatch.setattr(lesson_probes, "CLIP_HIGH", {"symmetric": 0.2, "clip_higher": 0.2})
    [row] = L.run_arm(*_quick(), 0)
    assert row["gain/entropy"] == 0.0
    assert row["gain/low_growth"] == 0.0 or row["gain/low_growth"] != row["gain/low_growth"]  # 0, or nan: none low


def test_clip_growth_probe_reports_its_numbers():
    [row] = L.run_arm(*_quick(), 0)
    assert 0.0 < row["pos/p"] < 1.0
    assert row["symmetric/entropy"] > 0 and row["clip_higher/entropy"] > 0
    assert row["gain/entropy"] == row["clip_higher/entropy"] - row["symmetric/entropy"]


def test_every_batch_is_sampled_from_the_trained_weights(monkeypatch):
    """Each probe batch (its samples and its pi_old) must come from the weights the trainer was trained to, not
    from the weights the previous batch's last update left: a ratio pi_new / pi_old is only meaningful when the
    update starts at pi_old. It fails if the weights are restored only before each update, not after it."""
    seen = []
    sample = lesson_probes.probe_batch

    def recording(trainer):
        seen.append([p.detach().clone() for p in trainer.params])
        return sample(trainer)

    monkeypatch.setattr(lesson_probes, "probe_batch", recording)
    lesson, arm = _quick()
    L.run_arm(dataclasses.replace(lesson, probe_batches=2), arm, 0)
    assert len(seen) == 2
    assert all(torch.equal(a, b) for a, b in zip(seen[0], seen[1]))


def test_each_update_uses_its_own_upper_clip(monkeypatch):
    """The other half of the pairing: the two updates differ only in the upper clip, and that clip is the one
    applied. With an upper clip of 0.01 the second pass can barely raise any token, with 0.28 it can: the two
    updates must differ. It fails if the probe's clip never reaches the loss (both updates then equal)."""
    monkeypatch.setattr(lesson_probes, "CLIP_HIGH", {"symmetric": 0.01, "clip_higher": 0.28})
    [row] = L.run_arm(*_quick(), 0)
    assert row["gain/entropy"] != 0.0
    assert row["clip_higher/low_growth"] != row["symmetric/low_growth"]


def test_equal_clips_give_equal_updates_with_minibatches(monkeypatch):
    """With several minibatches a pass shuffles the batch: both updates must see the same shuffles, else the
    pairing compares two orders as well as two clips. Equal clips: every paired difference exactly 0."""
    monkeypatch.setattr(lesson_probes, "CLIP_HIGH", {"symmetric": 0.2, "clip_higher": 0.2})
    lesson, arm = _quick()
    [row] = L.run_arm(lesson, dataclasses.replace(arm, overrides={**arm.overrides, "algorithm.minibatches": 2}), 0)
    assert row["gain/entropy"] == 0.0


def test_a_preset_with_a_critic_is_refused_by_name():
    """The probe updates the policy with fixed advantages; a critic's update would need returns. A preset with one
    gets a message naming the probe, the preset and the fix, not a TypeError from inside the update."""
    lesson, arm = _quick()
    with pytest.raises(ValueError, match="clip_growth probe updates the policy alone; 'ppo' trains a critic"):
        L.run_arm(dataclasses.replace(lesson, preset="ppo"), arm, 0)
