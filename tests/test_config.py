"""Config, presets and validation: every problem names the field, the value, what is allowed and the fix."""

import pytest

from labcore import config
from labcore.algorithms import PARTS, RECIPES
from labcore.config import ConfigError, build, check, validate


def test_every_field_has_help_text():
    """The UI shows field help as hover text; a field without it is a hole in the UI."""
    for section, cls in config.SECTIONS.items():
        for f in config.fields(cls):
            assert f.metadata.get("help"), f"{section}.{f.name} has no help text"


@pytest.mark.parametrize("name", sorted(config.list_presets()))
def test_every_preset_loads_and_validates(name):
    """Presets ship with the lab; each must name a recipe and validate as is."""
    cfg = config.load_preset(name)
    assert cfg.algorithm.recipe in RECIPES
    assert validate(cfg) == []
    assert config.list_presets()[name], "a preset needs a description"


def test_one_preset_per_recipe():
    presets = {config.load_preset(n).algorithm.recipe for n in config.list_presets()}
    assert set(RECIPES) <= presets


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_recipe_default_is_valid(recipe):
    assert validate(build(recipe)) == []


def test_recipe_fills_parts_and_overrides_win():
    """Loading order: defaults -> recipe -> overrides; the recipe-diff lists only the overrides."""
    cfg = build("dapo", {"algorithm.clip_high": 0.3, "rollout.task": "length"})
    assert cfg.algorithm.aggregation == "token_mean" and cfg.algorithm.dynamic_filter
    assert cfg.algorithm.clip_high == 0.3
    assert config.recipe_diff(cfg) == {"algorithm.clip_high": (0.28, 0.3), "rollout.task": ("arithmetic", "length")}


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError) as e:
        build("grpo", {"rollout.sampels_per_prompt": 3})
    assert "Did you mean 'samples_per_prompt'" in str(e.value)
    with pytest.raises(ConfigError) as e:
        build("grpo", {"rolout.task": "x"})
    assert "Did you mean 'rollout'" in str(e.value)


def test_unknown_recipe_is_named():
    with pytest.raises(ConfigError) as e:
        build("grpoo")
    assert "'grpoo'" in str(e.value) and "Did you mean 'grpo'" in str(e.value)


@pytest.mark.parametrize("overrides, fragment", [
    ({"algorithm.baseline": "leave_one_out", "rollout.samples_per_prompt": 1}, "samples_per_prompt >= 2"),
    ({"algorithm.clip_low": 0.0}, "algorithm.clip_low = 0.0 must be in (0, 1)"),
    ({"algorithm.clip_high": -1.0}, "algorithm.clip_high = -1.0"),
    ({"algorithm.minibatches": 3}, "does not divide the batch"),
    ({"rollout.prompts_per_step": 0}, "rollout.prompts_per_step = 0 must be a whole number >= 1"),
    ({"optim.lr": -1e-3}, "optim.lr = -0.001 must be a number > 0"),
    ({"rollout.temperature": 0.0}, "rollout.temperature = 0.0 must be in (0, 10]"),
    ({"algorithm.dual_clip": 0.5}, "must be > 1"),
    ({"kl.placement": "everywhere"}, "kl.placement = 'everywhere' is not allowed; choose one of"),
    ({"kl.estimator": "k33"}, "Did you mean 'k3'"),
    ({"rollout.task": "arithmetics"}, "Did you mean 'arithmetic'"),
    ({"algorithm.estimator": "gae"}, "needs algorithm.baseline = 'value'"),
    ({"rollout.overlong_buffer": 6}, "rollout.overlong_buffer = 6 must be 0 (off) or between 1 and"),
])
def test_validation_messages_name_field_value_and_fix(overrides, fragment):
    problems = validate(build("grpo", overrides))
    assert any(fragment in p for p in problems), problems


def test_max_new_tokens_past_context():
    problems = validate(build("grpo", {"rollout.max_new_tokens": 100}), context_length=64)
    assert any("context of 64 tokens" in p for p in problems)


def test_check_raises_with_all_problems():
    with pytest.raises(ConfigError) as e:
        check(build("grpo", {"optim.lr": 0, "run.steps": 0}))
    assert len(e.value.problems) == 2


def test_type_coercion_from_strings():
    """The CLI's --set and the UI send strings; they are coerced to the field's type or rejected clearly."""
    cfg = config.apply(build("grpo"), {"optim.lr": "1e-3", "run.steps": "5", "algorithm.whiten": "true"})
    assert cfg.optim.lr == 1e-3 and cfg.run.steps == 5 and cfg.algorithm.whiten is True
    with pytest.raises(ConfigError, match="expected a whole number"):
        config.apply(cfg, {"run.steps": "2.5"})
    with pytest.raises(ConfigError, match="expected a number"):
        config.apply(cfg, {"optim.lr": "fast"})


def test_toml_round_trip():
    cfg = build("ppo", {"optim.lr": 5e-6, "run.name": 'say "hi"'})
    assert config.from_toml_text(config.to_toml(cfg)) == cfg


def test_malformed_toml_is_a_config_error():
    with pytest.raises(ConfigError, match="could not be read"):
        config.from_toml_text("recipe = grpo [")


def test_unknown_preset():
    with pytest.raises(ConfigError, match="Did you mean 'grpo'"):
        config.load_preset("grpoo")


def test_parts_enumerate_config_fields():
    """The UI builds a dropdown per part; each must point at a real config field."""
    flat = config.flat(build("grpo"))
    for part, (key, options) in PARTS.items():
        assert key in flat, part
        assert flat[key] in options
