"""`rlhf-lab export`: runnable TRL / verl / OpenRLHF directories with a fidelity table per export.

The TRL exports of the grpo and rloo presets are run for 2 steps on the CPU (TRL is in the `test` extra). verl and
OpenRLHF do not install on a CPU machine (vLLM, Ray, DeepSpeed), so their exports are checked against key lists read
from their source at pinned commits: tests/data/verl_ppo_trainer_keys_1dda039b.txt (verl's composed
ppo_trainer.yaml at 1dda039b) and tests/data/openrlhf_train_ppo_ray_flags_3c3be623.txt (train_ppo_ray.py's
argparse at 3c3be623).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from labcore.cli import main as cli_main
from labcore.config import apply, build, flat, load_preset
from labcore.export import export
from labcore.export.fidelity import APPROX, BLOCKED, DROPPED, EXACT

DATA = Path(__file__).parent / "data"


def _key_list(name: str) -> set[str]:
    return {line for line in (DATA / name).read_text().splitlines() if line and not line.startswith("#")}


VERL_KEYS = _key_list("verl_ppo_trainer_keys_1dda039b.txt")
ORL_FLAGS = _key_list("openrlhf_train_ppo_ray_flags_3c3be623.txt")


def _module(path: Path, name: str):
    """Import `path` as a fresh module, with its folder first on sys.path (as the export's own scripts do)."""
    sys.path.insert(0, str(path.parent))
    try:
        for mod in ("lab_rewards", name):
            sys.modules.pop(mod, None)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(path.parent))
        sys.modules.pop("lab_rewards", None)


@pytest.mark.slow  # a TRL subprocess: ~40 s each on a shared 2-core machine, most of it importing TRL
@pytest.mark.parametrize("preset", ["grpo", "rloo"])
def test_trl_export_trains_two_steps_on_cpu(tmp_path, preset):
    """The directory runs as written: `python train.py --max_steps 2` trains, logs rewards and exits 0."""
    pytest.importorskip("trl")
    out = tmp_path / preset
    report = export(preset, "trl", out)
    assert report.ok and report.verdict == EXACT
    env = {**os.environ, "PYTHONPATH": "", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(out / "train.py"), "--max_steps", "2", "--output_dir",
                           str(tmp_path / "run")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = [json.loads(line) for line in (tmp_path / "run" / "log_history.jsonl").read_text().splitlines()]
    steps = [row for row in logs if "reward" in row]
    assert len(steps) == 2 and all(0.0 <= row["reward"] <= 1.2 for row in steps)
    assert "rewards/correct/mean" in steps[0] and "rewards/well_formed/mean" in steps[0]


def test_trl_keys_are_explicit_and_match_the_recipe(tmp_path):
    """TRL's own defaults (loss_type dapo, beta 0, bf16, lr 1e-6) never leak in: the keys are the lab's."""
    trl = pytest.importorskip("trl")
    cases = {"grpo": ("GRPOConfig", {"loss_type": "grpo", "beta": 0.04, "scale_rewards": "group"}),
             "dr_grpo": ("GRPOConfig", {"loss_type": "dr_grpo", "beta": 0.0, "scale_rewards": "none"}),
             "gspo": ("GRPOConfig", {"importance_sampling_level": "sequence", "epsilon": 3e-4}),
             "cispo": ("GRPOConfig", {"loss_type": "cispo", "epsilon_high": 5.0}),
             "dapo": ("GRPOConfig", {"loss_type": "dapo", "epsilon_high": 0.28}),
             "rloo": ("RLOOConfig", {"beta": 0.05, "normalize_advantages": False})}
    for preset, (config_cls, expected) in cases.items():
        export(preset, "trl", tmp_path / preset)
        train = _module(tmp_path / preset / "train.py", f"train_{preset}")
        for key, value in {**expected, "bf16": False, "learning_rate": 3e-3}.items():
            assert train.CONFIG[key] == value, (preset, key)
        getattr(trl, config_cls)(**{**train.CONFIG, "output_dir": str(tmp_path / "o"), "use_cpu": True})


def test_known_fidelity_cases():
    """The issue's list: GRPO, Dr. GRPO, GSPO, RLOO exact to TRL; DAPO without dynamic sampling; CISPO clips above
    only; PPO, ReMax, adaptive KL, dynamic sampling to verl / OpenRLHF, not TRL; TRPO nowhere."""
    def plan(source, target):
        from labcore.export import openrlhf, trl, verl
        from labcore.export.fidelity import base_rows, verdict

        cfg = source if not isinstance(source, str) else load_preset(source)
        mapped = {"trl": lambda: trl.plan(cfg)[2], "verl": lambda: verl.plan(cfg, "m", [])[1],
                  "openrlhf": lambda: openrlhf.plan(cfg, "m", [])[1]}[target]()
        rows = base_rows(cfg, mapped)
        assert [r.setting for r in rows] == list(flat(cfg))  # every lab setting, once
        return verdict(rows), {r.setting: r for r in rows}

    for preset in ("grpo", "dr_grpo", "gspo", "rloo"):
        assert plan(preset, "trl")[0] == EXACT, preset
    verdict, rows = plan("dapo", "trl")
    assert verdict == APPROX and rows["algorithm.dynamic_filter"].status == DROPPED
    verdict, rows = plan("cispo", "trl")
    assert verdict == APPROX and rows["algorithm.clip_low"].status == APPROX
    adaptive = apply(build("ppo"), {"kl.controller": "adaptive", "kl.target": 1.0})
    for source in ("ppo", "remax", adaptive):
        assert plan(source, "trl")[0] == BLOCKED
        verdict, rows = plan(source, "verl")
        assert verdict != BLOCKED, source
    assert plan(adaptive, "verl")[1]["kl.controller"].key == "algorithm.kl_ctrl.type=adaptive"
    assert plan(adaptive, "openrlhf")[1]["kl.controller"].key == "--algo.kl.target"
    for target in ("verl", "openrlhf"):
        assert plan("dapo", target)[1]["algorithm.dynamic_filter"].status == APPROX
    assert plan("ppo", "openrlhf")[0] != BLOCKED
    for target in ("trl", "verl", "openrlhf"):
        assert plan("trpo", target)[0] == BLOCKED


@pytest.mark.parametrize("target", ["trl", "verl", "openrlhf"])
def test_trpo_is_refused_with_exit_code_2(tmp_path, target, capsys):
    out = tmp_path / "out"
    assert cli_main(["export", "trpo", "--to", target, "--out", str(out)]) == 2
    assert not out.exists()
    err = capsys.readouterr()
    assert "TRPO" in err.out and "does not go to" in err.err


def test_verl_overrides_are_keys_of_the_pinned_ppo_trainer_yaml(tmp_path):
    """Plain keys must exist in verl's composed config (else Hydra refuses them); '+' keys must not (else Hydra
    refuses the '+')."""
    pytest.importorskip("pyarrow")
    for preset in ("grpo", "rloo", "dapo", "gspo", "cispo", "dr_grpo", "ppo", "remax", "reinforce_pp"):
        report = export(preset, "verl", tmp_path / preset)
        assert report.ok, preset
        keys = json.loads((tmp_path / preset / "overrides.json").read_text())
        plain = {k for k in keys if not k.startswith("+")}
        assert plain <= VERL_KEYS, (preset, sorted(plain - VERL_KEYS))
        assert not {k[1:] for k in keys if k.startswith("+")} & VERL_KEYS
        run_sh = (tmp_path / preset / "run.sh").read_text()
        assert "verl.trainer.main_ppo" in run_sh and "reward.custom_reward_function.path" in run_sh


def test_openrlhf_flags_are_in_the_pinned_argparse(tmp_path):
    for preset in ("grpo", "rloo", "dapo", "gspo", "ppo", "reinforce_pp", "length_eos"):
        report = export(preset, "openrlhf", tmp_path / preset)
        assert report.ok, preset
        words = shlex.split((tmp_path / preset / "run.sh").read_text().split("train_ppo_ray", 1)[1], comments=True)
        flags = {w for w in words if w.startswith("--") and w != "--"}
        assert flags and flags <= ORL_FLAGS, (preset, sorted(flags - ORL_FLAGS))
        assert "--prompt_max_len" not in flags and "--rollout.n_samples_per_prompt" in flags


def test_exported_rewards_score_like_the_lab(tmp_path):
    """The three wrappers give the lab's reward (correct + 0.2 well_formed) from each library's inputs."""
    from transformers import AutoTokenizer

    pytest.importorskip("pyarrow")
    for target in ("trl", "verl", "openrlhf"):
        export("grpo", target, tmp_path / target)
    tok = AutoTokenizer.from_pretrained(tmp_path / "trl" / "model")
    eos = tok.eos_token_id
    trl_rewards = _module(tmp_path / "trl" / "rewards.py", "rewards")
    trl_rewards.EOS_TOKEN_ID = eos
    fns, weights = trl_rewards.REWARD_FUNCS, trl_rewards.REWARD_WEIGHTS
    prompts, completions, ids = ["3 + 4 =", "3 + 4 ="], ["7", "7"], [[11, eos], [11]]  # ended / cut
    scores = [sum(w * fn(prompts, completions, completion_ids=ids, answer=[7, 7])[i] for fn, w in zip(fns, weights))
              for i in range(2)]
    assert scores == pytest.approx([1.2, 1.0])
    verl = _module(tmp_path / "verl" / "reward.py", "reward")
    info = {"prompt_text": "3 + 4 =", "answer": 7, "index": 0}
    assert verl.compute_score("rlhf-lab/arithmetic", " 7", json.dumps({"answer": 7}), info) == pytest.approx(1.2)
    assert verl.compute_score("rlhf-lab/arithmetic", " 8", json.dumps({"answer": 7}), info) == pytest.approx(0.2)
    orl = _module(tmp_path / "openrlhf" / "reward_func.py", "reward_func")
    out = orl.reward_func([f"3 + 4 = 7{tok.eos_token}", "3 + 4 = 7 7"], ["3 + 4 =", "3 + 4 ="],
                          [json.dumps({"answer": 7})] * 2)
    assert out["rewards"].tolist() == pytest.approx([1.2, 1.0])


def test_learned_reward_model_is_copied_and_scores_like_the_lab(tmp_path):
    """The sentiment task's reward model travels with the export and scores as labcore's RewardModelScorer."""
    from labcore.rewards import RewardModelScorer

    pytest.importorskip("pyarrow")
    cfg = apply(build("grpo"), {"rollout.task": "sentiment", "rollout.max_new_tokens": 10})
    report = export(cfg, "verl", tmp_path / "verl")
    assert report.ok and (tmp_path / "verl" / "reward_model" / "config.json").is_file()
    verl = _module(tmp_path / "verl" / "reward.py", "reward")
    prompt, completions = "review : the food was", ["great and the staff was friendly", "cold and bland"]
    lab = RewardModelScorer("tiny-rm")([prompt] * 2, completions)
    got = [verl.compute_score("rlhf-lab/sentiment", " " + c, "{}", {"prompt_text": prompt}) for c in completions]
    assert got == pytest.approx(lab, abs=1e-5) and lab[0] > lab[1]


def test_a_user_dataset_file_is_materialised(tmp_path):
    """With `rollout.dataset` naming a local file, its rows are exported, not the task's."""
    from labcore.export.world import ExportError, prompt_rows

    rows = [{"prompt": "1 + 1 =", "answer": 2}, {"prompt": "5 - 3 =", "answer": 2}]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = build("grpo")
    assert prompt_rows(build("grpo", {"rollout.dataset": str(path)}))[0] == rows
    with pytest.raises(ExportError, match="not a local file"):
        prompt_rows(build("grpo", {"rollout.dataset": str(tmp_path / "missing.jsonl")}))
    built_in, where = prompt_rows(cfg)  # no dataset setting: the task's prompts, P x steps of them
    assert len(built_in) == cfg.rollout.prompts_per_step * cfg.run.steps and "arithmetic" in where


def test_the_2025_losses_go_where_a_library_has_them(tmp_path):
    """SAPO is TRL's loss_type='sapo' (same tau defaults); GMPO is verl's geo_mean and nowhere in TRL's trainers."""
    sapo = export("sapo", "trl", tmp_path / "sapo")
    assert sapo.verdict == EXACT and re.search(r"loss_type\W+sapo", (tmp_path / "sapo" / "train.py").read_text())
    assert export("gmpo", "trl", tmp_path / "gmpo_trl").verdict == "not exportable"
    verl = export("gmpo", "verl", tmp_path / "gmpo_verl")
    assert verl.ok and "geo_mean" in (tmp_path / "gmpo_verl" / "run.sh").read_text()
