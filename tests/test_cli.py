"""The headless CLI: a clear message and a non-zero exit for bad arguments, a summary for a good run."""

import pytest

from labcore import cli


def test_presets_lists_names_and_descriptions(capsys):
    assert cli.main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "grpo" in out and "GRPO on arithmetic" in out


@pytest.mark.parametrize("argv, fragment", [
    (["run", "grpoo"], "Did you mean 'grpo'"),
    (["run", "grpo", "--set", "optim.lr"], "not of the form section.key=value"),
    (["run", "grpo", "--set", "optim.lrr=1"], "Did you mean 'lr'"),
    (["run", "grpo", "--set", "rollout.samples_per_prompt=1"], "samples_per_prompt >= 2"),
    (["run", "grpo", "--set", "model.policy=./missing-model"], "no directory at"),
    (["run", "grpo", "--steps", "0"], "run.steps = 0 must be a whole number >= 1"),
    (["run", "grpo", "--set", "rollout.max_new_tokens=200"], "does not fit the model's context"),
])
def test_bad_arguments_exit_2_with_a_message(argv, fragment, capsys, tmp_path):
    assert cli.main([*argv, "--out", str(tmp_path)]) == 2
    assert fragment in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [], "nothing may be created for a refused run"


def test_malformed_toml_file(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("recipe = 'grpo'\n[rollout\n")
    assert cli.main(["run", str(bad), "--out", str(tmp_path / "runs")]) == 2
    assert "could not be read" in capsys.readouterr().err


def test_run_trains_and_prints_a_summary(tmp_path, capsys):
    rc = cli.main(["run", "rloo", "--steps", "3", "--out", str(tmp_path), "--set", "rollout.prompts_per_step=2",
                   "--set", "run.grad_variance=false"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "state: done" in out and "reward/mean" in out
    assert len(list(tmp_path.iterdir())) == 1
