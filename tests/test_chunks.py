"""A run in chunks continues exactly: 3 + 3 steps through a stand-in for `spaces.GPU` = one run of 6 steps.

The stand-in does what ZeroGPU does to the function's inputs and outputs: it pickles the arguments in and every
yielded value out (the real one runs the function in a forked child). Records are compared exactly, apart from
the timing keys. GRPO (Adam over one pass, fused rollout) and PPO (a critic, GAE, minibatches shuffled by the
sampling generator, an adaptive KL coefficient) cover every piece of the state.
"""

import pickle
import sys
import types

import pytest
from ui_fixtures import require_model

from labcore import config as C
from labcore.chunks import restore_state, run_chunk, trainer_state
from labcore.trainer import Trainer

TIMING = ("time", "time/step_s", "tokens_per_s")


def _config(recipe: str) -> C.Config:
    overrides = {"run.steps": 6, "rollout.prompts_per_step": 2, "rollout.samples_per_prompt": 4,
                 "run.grad_variance_every": 2, "model.policy": require_model()}
    if recipe == "ppo":
        overrides.update({"kl.controller": "adaptive", "algorithm.minibatches": 2, "algorithm.epochs": 2})
    return C.apply(C.load_preset(recipe), overrides)


def _untimed(records):
    return [({k: v for k, v in m.items() if k not in TIMING}, s) for m, s in records]


def _fake_spaces(calls: list) -> types.ModuleType:
    """A `spaces` module whose GPU(duration=...) pickles arguments and yields across a process boundary."""
    def GPU(duration):
        def wrap(fn):
            def handler(*args):
                calls.append(duration(*args) if callable(duration) else duration)
                args = pickle.loads(pickle.dumps(args))
                for item in fn(*args):
                    yield pickle.loads(pickle.dumps(item))
            return handler
        return wrap
    module = types.ModuleType("spaces")
    module.GPU = GPU
    return module


@pytest.mark.parametrize("recipe", ["grpo", "ppo"])
def test_two_chunks_give_the_records_of_one_run(recipe, monkeypatch):
    from app import space

    cfg = _config(recipe)
    whole = Trainer(cfg)
    one_run = [(r.metrics, r.samples) for r in (whole.train_step() for _ in range(6))]

    calls: list = []
    monkeypatch.setitem(sys.modules, "spaces", _fake_spaces(calls))
    train_chunk = space.chunk_runner()
    chunked, state = [], None
    for _ in range(2):
        for kind, value in train_chunk(cfg, state, 3):
            if kind == "record":
                chunked.append(value)
            else:
                state = value
    assert state["step"] == 6 and len(chunked) == 6
    assert _untimed(chunked) == _untimed(one_run)
    assert len(calls) == 2 and all(0 < d <= space.MAX_CHUNK_S for d in calls)
    assert chunked[3][0]["time"] > chunked[2][0]["time"]  # the clock continues across chunks


def test_a_run_stops_at_its_length_and_a_fresh_chunk_differs():
    """The last chunk runs only the steps left; without the state, a chunk starts the run over (the test above
    is not passing merely because runs are deterministic)."""
    cfg = _config("grpo")
    records, state = [], None
    for kind, value in run_chunk(cfg, None, 4):
        records.append(value) if kind == "record" else None
        state = value if kind == "state" else state
    rest = [v for kind, v in run_chunk(cfg, state, 4) if kind == "record"]
    assert [m["step"] for m, _ in rest] == [5, 6]
    again = [v for kind, v in run_chunk(cfg, None, 2) if kind == "record"]
    assert [m["step"] for m, _ in again] == [1, 2] and _untimed(again) != _untimed(rest)


def test_a_state_from_another_lora_shape_is_refused():
    state = trainer_state(Trainer(_config("grpo")))
    other = Trainer(C.apply(_config("grpo"), {"model.lora_rank": 2}))
    with pytest.raises(ValueError, match="LoRA rank"):
        restore_state(other, state)
