"""Real use: your own prompts (rollout.dataset), reward functions (rollout.reward_fns), registered tasks, chat
templates, every EOS id of an instruct model, and the GPU-only rule that sampling draws on the model's device.

Each bad input must stop a run before it starts, with a message naming the file, line or column and the fix."""

import json
import random
from types import SimpleNamespace

import pytest
import torch
from user_fixtures import build_chat_llama, write_task_files

from labcore import cli, rewards
from labcore.chat import eos_token_ids, render_prompt, uses_chat_template
from labcore.config import ConfigError, build, check
from labcore.rollout import generate
from labcore.tasks import TASKS, register_task
from labcore.userdata import load_rows
from labcore.userfns import problems, task_for


@pytest.fixture(scope="module")
def chat_llama(tmp_path_factory):
    return build_chat_llama(tmp_path_factory.mktemp("models") / "chat-llama")


def test_cli_trains_a_chat_llama_on_a_jsonl_dataset_with_a_reward_file(chat_llama, tmp_path, monkeypatch, capsys):
    """The issue's check: `rlhf-lab run` (app.cli, the script's entry) with a local instruct model, a JSONL
    dataset whose extra column reaches the reward function, and the function given as path/to/file.py:fn."""
    from app.cli import main

    data, module = write_task_files(tmp_path / "task")
    monkeypatch.chdir(tmp_path)
    rc = main(["run", "grpo", "--steps", "3", "--out", str(tmp_path / "runs"),
               "--set", f"model.policy={chat_llama}", "--set", "rollout.dataset=task/prompts.jsonl",
               "--set", "rollout.reward_fns=task/my_rewards.py:brevity", "--set", "rollout.prompts_per_step=2",
               "--set", "rollout.max_new_tokens=8", "--set", "run.grad_variance=false", "--set", "optim.lr=1e-2"])
    out = capsys.readouterr()
    assert rc == 0, out.out + out.err
    run = next((tmp_path / "runs").iterdir())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(0.0 <= r["reward/brevity/mean"] <= 1.0 for r in records)


@pytest.mark.slow  # a server and a spawned worker process: about half a minute on a 2-core CPU
def test_the_app_api_trains_on_your_dataset_and_reward_file(chat_llama, tmp_path):
    """The same through the app's public API (/start), in a spawned worker process as the app runs them."""
    import time

    from gradio_client import Client
    from ui_fixtures import running_lab

    data, module = write_task_files(tmp_path / "task")
    with running_lab(tmp_path / "runs") as (manager, url, _):
        client = Client(url, verbose=False)
        client.predict(model_policy=str(chat_llama), rollout_dataset=str(data),
                       rollout_reward_fns=f"{module}:brevity", rollout_prompts_per_step=2,
                       rollout_samples_per_prompt=2, rollout_max_new_tokens=8, run_steps=3,
                       run_grad_variance=False, api_name="/start")
        end = time.monotonic() + 180
        while (details := client.predict(api_name="/status")[1])["state"] in ("queued", "running") \
                and time.monotonic() < end:
            time.sleep(0.5)
    assert details["state"] == "done" and details["records"] == 3, details
    assert 0.0 <= details["last"]["reward/brevity/mean"] <= 1.0


def test_an_uploaded_reward_file_names_its_reward_functions(tmp_path):
    from app.userfiles import reward_fns_setting

    _, module = write_task_files(tmp_path)
    (module.parent / "helpers.py").write_text("def helper(x):\n    return x\n")
    assert reward_fns_setting(str(module)) == ", ".join(f"{module}:{n}" for n in ("brevity", "boom", "short", "words"))
    with pytest.raises(ValueError, match="defines no reward function"):
        reward_fns_setting(str(module.parent / "helpers.py"))


def test_the_trainer_formats_prompts_with_the_chat_template_and_stops_at_each_eos(chat_llama, tmp_path):
    from labcore.trainer import Trainer

    data, _ = write_task_files(tmp_path)
    cfg = build("grpo", {"model.policy": str(chat_llama), "rollout.dataset": str(data),
                         "rollout.reward_fns": f"{tmp_path / 'my_rewards.py'}:brevity"})
    trainer = Trainer(cfg)
    ids, _ = trainer.encode([{"prompt": "say 2 words"}])
    assert trainer.tok.decode(ids[0]) == "<|im_start|>user\nsay 2 words<|im_end|>\n<|im_start|>assistant\n"
    im_end, eot = trainer.tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert trainer.eos_ids == [im_end, eot]
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    ids, _ = trainer.encode([{"prompt": msgs}])
    assert trainer.tok.decode(ids[0]) == ("<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                                          "<|im_start|>assistant\n")
    off = Trainer(build("grpo", {"model.policy": str(chat_llama), "rollout.chat_template": "off"}))
    assert off.tok.decode(off.encode([{"prompt": "say 2 words"}])[0][0]) == "say 2 words"


class _Always:
    """A stand-in LM that always predicts `token` (greedy decoding then emits it at once)."""

    def __init__(self, token: int, vocab: int = 8):
        self.token, self.vocab = token, vocab

    def __call__(self, input_ids, **kwargs):
        logits = torch.zeros(input_ids.size(0), input_ids.size(1), self.vocab)
        logits[..., self.token] = 1.0
        return SimpleNamespace(logits=logits, past_key_values=None, hidden_states=None)


def test_generation_stops_at_any_of_several_eos_ids():
    """Qwen2 / Llama 3 end a turn with one of several ids: a completion that emits the second must stop there."""
    ids, mask = torch.tensor([[1, 2]]), torch.ones(1, 2, dtype=torch.long)
    stopped = generate(_Always(5), ids, mask, max_new_tokens=4, eos_id=[3, 5], pad_id=0, greedy=True)
    assert stopped.completion_ids.tolist() == [[5]] and stopped.eos.tolist() == [True]
    ran_on = generate(_Always(5), ids, mask, max_new_tokens=4, eos_id=3, pad_id=0, greedy=True)
    assert ran_on.completion_ids.size(1) == 4 and ran_on.eos.tolist() == [False]


def test_eos_ids_come_from_the_generation_config_and_the_tokenizer():
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[7, 9]))
    assert eos_token_ids(model, SimpleNamespace(eos_token_id=9)) == [7, 9]
    assert eos_token_ids(SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=4)),
                         SimpleNamespace(eos_token_id=2)) == [4, 2]


def test_sampling_refuses_a_generator_on_another_device():
    """On a GPU a CPU generator crashes torch.multinomial; generate says so before any model call ("meta" stands
    in for an accelerator: no GPU is needed)."""
    ids = torch.zeros(1, 2, dtype=torch.long, device="meta")
    with pytest.raises(ValueError, match="generator is on cpu but the model's tensors are on meta"):
        generate(_Always(1), ids, ids, max_new_tokens=2, eos_id=1, pad_id=0, generator=torch.Generator())


def test_the_trainer_makes_its_sampling_generator_on_the_policy_device(monkeypatch):
    """The trainer must not hard-code the CPU: with a policy that reports another device, the generator is asked
    for on that device (recorded, since a real non-CPU generator needs that hardware)."""
    import labcore.rollout as rollout
    from labcore.model import load_policy
    from labcore.trainer import Trainer

    policy = load_policy("tiny", device="cpu")
    policy.device = torch.device("meta")
    asked, real = [], torch.Generator
    monkeypatch.setattr(rollout.torch, "Generator", lambda device: asked.append(torch.device(device)) or real())
    Trainer(build("grpo", {"model.device": "cpu"}), policy=policy)
    assert asked == [torch.device("meta"), torch.device("cpu")]  # sampling on the model's device; shuffles on the CPU


def test_chat_template_modes():
    plain = SimpleNamespace(chat_template=None)
    assert uses_chat_template(plain, "auto") is False
    with pytest.raises(ConfigError, match="has no chat template"):
        uses_chat_template(plain, "on", "my-model")
    with pytest.raises(ConfigError, match="list of chat messages, but chat templates are off"):
        render_prompt(plain, [{"role": "user", "content": "hi"}], chat=False)


# ------------------------------------------------------------------------------------ datasets and functions


def _cfg(**rollout):
    return build("grpo", {f"rollout.{k}": v for k, v in rollout.items()})


def test_every_supported_format_loads_with_its_columns(tmp_path):
    import datasets

    rows = [{"prompt": "1 + 2 =", "answer": 3}, {"prompt": "4 - 1 =", "answer": 3}]
    ds = datasets.Dataset.from_list(rows)
    ds.to_csv(tmp_path / "p.csv", index=False)
    ds.to_parquet(tmp_path / "p.parquet")
    ds.save_to_disk(str(tmp_path / "saved"))  # a str: datasets 2.19 (the floor) refuses a Path here
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    for name in ("p.csv", "p.parquet", "saved", "p.jsonl"):
        assert load_rows(str(tmp_path / name)) == rows, name


def test_a_chat_dataset_trains_and_logs_its_prompts_as_text(chat_llama, tmp_path):
    from labcore.trainer import Trainer

    rows = [{"prompt": [{"role": "user", "content": f"say {n} words"}], "target_words": n} for n in (1, 2, 3)]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "r.py").write_text("def n_words(prompts, completions, target_words, **kw):\n"
                                   "    return [-abs(len(c[0]['content'].split()) - t) for c, t in "
                                   "zip(completions, target_words)]\n")
    trainer = Trainer(build("grpo", {"model.policy": str(chat_llama), "rollout.dataset": str(tmp_path / "chat.jsonl"),
                                     "rollout.reward_fns": f"{tmp_path / 'r.py'}:n_words", "rollout.prompts_per_step": 2,
                                     "rollout.max_new_tokens": 4}))
    result = trainer.train_step()
    assert "reward/n_words/mean" in result.metrics
    assert result.samples[0]["prompt"] in {"say 1 words", "say 2 words", "say 3 words"}


def test_chat_message_prompts_reach_reward_functions_in_trl_form(tmp_path):
    """TRL's conversational convention: message-list prompts, and each completion as one assistant message."""
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    (tmp_path / "chat.jsonl").write_text(json.dumps({"prompt": msgs, "n": 1}) + "\n")
    rows = load_rows(str(tmp_path / "chat.jsonl"))
    seen = {}

    def spy(prompts, completions, n, **kw):
        seen.update(prompts=prompts, completions=completions, n=n)
        return [0.5]

    total, per_fn = rewards.call_reward_funcs([spy], [2.0], [rows[0]["prompt"]], ["hello"], {"n": [1]})
    assert total == [1.0] and per_fn == {"spy": 0.5}
    assert seen == {"prompts": [msgs], "completions": [[{"role": "assistant", "content": "hello"}]], "n": [1]}


@pytest.mark.parametrize("content, fragment", [
    ('{"question": "1 + 2 ="}\n', "has no 'prompt' column; its columns are question"),
    ('{"prompt": "1 + 2 ="}\n{"prompt": "1 + \n', "line 2: not valid JSON"),
    ('{"prompt": "1 + 2 ="}\n\n{"prompt": ""}\n', "line 3: column 'prompt' is empty"),
    ('{"prompt": [{"text": "hi"}]}\n', "a message list needs objects like"),
    ('{"prompt": "a", "eos": 1}\n', "clash with what reward functions already receive"),
    ('[1, 2]\n', "line 1: is a JSON list, not an object"),
])
def test_a_bad_dataset_is_named_with_its_line_and_fix(tmp_path, content, fragment):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    found = problems(_cfg(dataset=str(path)))
    assert len(found) == 1 and fragment in found[0] and str(path) in found[0], found


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "x.parquet").write_text("not parquet")
    assert "could not be read as PARQUET" in problems(_cfg(dataset=str(tmp_path / "x.parquet")))[0]
    assert "no such file or folder" in problems(_cfg(dataset=str(tmp_path / "none.jsonl")))[0]
    (tmp_path / "x.txt").write_text("prompt")
    assert "unsupported file type '.txt'" in problems(_cfg(dataset=str(tmp_path / "x.txt")))[0]


@pytest.mark.parametrize("fn, fragment", [
    ("boom", "reward function 'boom' raised KeyError: 'answer' at "),
    ("short", "returned 1 values for 4 completions"),
    ("words", "returned 'good' for completion 0"),
    ("brevit", "Did you mean 'brevity'?"),
])
def test_a_broken_reward_function_stops_the_run_before_it_starts(tmp_path, fn, fragment):
    data, module = write_task_files(tmp_path)
    found = problems(_cfg(dataset=str(data), reward_fns=f"{module}:{fn}"))
    assert len(found) == 1 and fragment in found[0], found
    if fn == "boom":
        assert f"{module}:" in found[0], "the message names the file and line that raised"


def test_reward_functions_by_module_path_with_weights(tmp_path, monkeypatch):
    data, _ = write_task_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    task = task_for(_cfg(dataset=str(data), reward_fns="my_rewards.brevity, tiny-rm", reward_weights="1, 0.5"))
    assert [rewards.fn_name(f) for f in task.reward_funcs] == ["brevity", "reward_model"]
    assert task.reward_weights == (1.0, 0.5)
    rows = task.make_prompts(random.Random(0), 12)  # two epochs of the six rows: each row once per epoch
    assert sorted(r["target_words"] for r in rows[:6]) == [1, 2, 3, 4, 5, 6] == sorted(r["target_words"] for r in rows[6:])
    found = problems(_cfg(dataset=str(data), reward_fns="my_rewards.brevity", reward_weights="1, 2"))
    assert "2 numbers for 1 reward functions" in found[0]
    assert "no module 'nowhere'" in problems(_cfg(reward_fns="nowhere.fn"))[0]
    assert "comma-separated numbers" in " ".join(check_problems(_cfg(reward_weights="1, x")))


def check_problems(cfg):
    try:
        check(cfg)
    except ConfigError as e:
        return e.problems
    return []


def test_cli_refuses_a_bad_dataset_and_creates_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "1 + 2 ="}\n')
    runs = tmp_path / "runs"
    assert cli.main(["run", "grpo", "--out", str(runs), "--set", f"rollout.dataset={bad}"]) == 2
    assert "has no 'prompt' column" in capsys.readouterr().err
    assert not runs.exists() or list(runs.iterdir()) == []


def test_shared_mode_never_reads_paths_or_imports_code(tmp_path):
    from labcore.runner import RunManager, SharedLimits

    manager = RunManager(tmp_path / "runs", limits=SharedLimits())
    try:
        with pytest.raises(ConfigError) as err:
            manager.submit(_cfg(dataset="/etc/passwd", reward_fns="os.system"), owner="visitor")
        assert "rollout.dataset is not offered on a shared server" in str(err.value)
        assert "rollout.reward_fns is not offered on a shared server" in str(err.value)
    finally:
        manager.shutdown()


def test_a_registered_task_passes_validation_and_trains(monkeypatch):
    from labcore import tasks

    monkeypatch.setattr(tasks, "TASKS", dict(tasks.TASKS))  # the registration ends with the test
    monkeypatch.setattr(tasks, "_BUILDERS", dict(tasks._BUILDERS))

    def prompts(rng, n):
        return [{"prompt": f"{a} + {a} =", "answer": 2 * a} for a in (rng.randint(0, 9) for _ in range(n))]

    register_task("doubling", prompts, [rewards.correct], description="double a number")
    assert tasks.TASKS["doubling"] == "double a number" and "doubling" not in TASKS
    from labcore.trainer import Trainer

    trainer = Trainer(build("grpo", {"rollout.task": "doubling", "run.grad_variance": False,
                                     "rollout.prompts_per_step": 2}))
    metrics = trainer.train_step().metrics
    assert "reward/correct/mean" in metrics
    with pytest.raises(ValueError, match="is a built-in task"):
        register_task("arithmetic", prompts, [rewards.correct])


# --------------------------------------------------------------------------------------- model folder checks


def test_a_tokenizer_larger_than_the_embedding_is_refused_clearly(tmp_path):
    from labcore.model import ModelLoadError, load_policy

    folder = build_chat_llama(tmp_path / "small-embedding", embedding_rows=200)
    with pytest.raises(ModelLoadError, match=r"has \d+ tokens but the model's embedding has only 200 rows"):
        load_policy(str(folder), device="cpu")


def test_a_folder_without_tokenizer_files_says_which_are_missing(chat_llama, tmp_path):
    import shutil

    from labcore.model import ModelLoadError, load_policy

    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for f in chat_llama.iterdir():
        if not f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(f, folder / f.name)
    with pytest.raises(ModelLoadError, match="holds none of tokenizer.json, tokenizer_config.json"):
        load_policy(str(folder), device="cpu")


def test_defaults_follow_the_model_unless_set():
    """The recipes' rates are tuned for the built-in model: a real one gets them scaled (ratios kept) and no
    gradient-variance pass, through build (TOML, API) and through apply (`--set model.policy=...`)."""
    from labcore.config import apply, load_preset

    real = build("grpo", {"model.policy": "some/model"})
    assert (real.optim.lr, real.run.grad_variance) == (5e-5, False)
    assert build("ppo", {"model.policy": "some/model"}).optim.lr == pytest.approx(2.5e-5)
    assert apply(load_preset("grpo"), {"model.policy": "some/model"}).optim.lr == 5e-5
    chosen = build("grpo", {"model.policy": "some/model", "optim.lr": 1e-3, "run.grad_variance": True})
    assert (chosen.optim.lr, chosen.run.grad_variance) == (1e-3, True)
    assert (build("grpo").optim.lr, build("grpo").run.grad_variance) == (3e-3, True)


def test_the_fast_path_falls_back_when_its_logits_differ_from_transformers(monkeypatch):
    """A transformers release that changed its maths must not make the fast path silently wrong: the check at load
    compares logits and, on a mismatch, gives the reason and leaves transformers' forward in charge."""
    from labcore import fastpath
    from labcore.model import load_policy

    policy = load_policy("tiny", device="cpu")
    fast, why = fastpath.fast_decoder(policy.model)
    assert fast is not None and why == ""
    monkeypatch.setattr(fastpath, "rms_norm", lambda x, weight, eps: x * weight)  # a norm that drifted
    fast, why = fastpath.fast_decoder(policy.model)
    assert fast is None and "its logits differ from transformers" in why
