"""The lab's public API, driven with gradio_client against a real server and real (tiny) training runs.

One `Client` is one browser session: the run it starts stays in its session state between calls, exactly as
a tab's does. Runs use the smallest settings (2 prompts x 2 samples, 4 new tokens) so a step takes well under
a second on a CPU.
"""

import time
import zipfile

import pytest
from gradio_client import Client
from ui_fixtures import Watchers, running_lab

from app.lab import Lab, status_html
from labcore import config as C
from labcore.runner import RunManager


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("runs")) as lab:
        yield lab


def small(model: str, **over) -> dict:
    return {"model_policy": model, "rollout_prompts_per_step": 2,
            "rollout_samples_per_prompt": 2, "rollout_max_new_tokens": 4, "run_steps": 4,
            "run_log_samples": 4, **over}


def outputs(client: Client, api_name: str, result: tuple) -> dict:
    """The endpoint's results by label (the API hides state outputs, so positions are not obvious)."""
    labels = [r["label"] for r in client.view_api(return_format="dict", print_info=False)
              ["named_endpoints"][api_name]["returns"]]
    return dict(zip(labels, result))


def poll(client: Client, until, timeout: float = 120.0) -> dict:
    end = time.monotonic() + timeout
    while True:
        _, details = client.predict(api_name="/status")
        if until(details) or time.monotonic() > end:
            return details
        time.sleep(0.3)


def test_start_poll_and_stop_a_run(lab):
    """Start through /start, see step records arrive through /status, stop it through /stop."""
    manager, url, model = lab
    client = Client(url, verbose=False)
    out = outputs(client, "/start", client.predict(**small(model, run_steps=200), api_name="/start"))
    assert out["setting checks"] == "" and "rl-pill" in out["run status"]

    details = poll(client, lambda d: d["records"] >= 2 or d["state"] in ("failed", "done"))
    assert details["state"] == "running", details
    assert details["last"]["step"] >= 2 and "reward/mean" in details["last"]

    client.predict(api_name="/stop")
    details = poll(client, lambda d: d["state"] not in ("running", "queued", "paused"), timeout=60)
    assert details["state"] == "stopped" and details["records"] < 200
    assert manager.store.samples(details["run_id"]), "samples were logged"

    exported = client.predict(api_name="/export")  # an update that shows the file: {"value": path, ...}
    with zipfile.ZipFile(exported["value"]) as z:
        assert {"config.toml", "metrics.csv", "samples.jsonl"} <= set(z.namelist())

    out = outputs(client, "/reset", client.predict(api_name="/reset"))
    assert "Ready" in out["run status"]
    assert client.predict(api_name="/status")[1]["state"] == "none"


def test_step_without_a_run_starts_paused_and_steps_once(lab):
    manager, url, model = lab
    client = Client(url, verbose=False)
    client.predict(**small(model), api_name="/step")
    details = poll(client, lambda d: d["records"] >= 1 or d["state"] == "failed")
    assert details["records"] == 1 and details["state"] == "paused", details
    time.sleep(1.0)  # paused: no second step comes
    _, details = client.predict(api_name="/status")
    assert details["records"] == 1
    client.predict(api_name="/pause")  # the Pause/Resume button resumes a paused run
    details = poll(client, lambda d: d["state"] in ("done", "failed"))
    assert details["state"] == "done" and details["records"] == 4


def test_invalid_settings_return_the_problems_and_start_nothing(lab):
    manager, url, model = lab
    client = Client(url, verbose=False)
    before = len(manager.runs())
    bad = small(model, algorithm_clip_low=1.5, algorithm_minibatches=3)
    out = outputs(client, "/start", client.predict(**bad, api_name="/start"))
    assert "algorithm.clip_low = 1.5" in out["setting checks"]
    assert "algorithm.minibatches = 3 does not divide" in out["setting checks"]
    assert len(manager.runs()) == before
    _, details = client.predict(api_name="/status")
    assert details["state"] == "none"


def test_shared_mode_lists_own_and_published_runs_only(tmp_path):
    """In a workshop each session sees its own runs plus published ones; locally it sees every run."""
    manager = RunManager(tmp_path)
    ids = {who: manager.store.create(C.build("grpo"), who) for who in ("me", "you", "them")}
    manager.store.update_meta(ids["them"], state="done", published=True)
    shared, local = Lab(manager, shared=True), Lab(manager)
    assert {r["run_id"] for r in shared.visible_runs("me")} == {ids["me"], ids["them"]}
    assert {r["run_id"] for r in local.visible_runs("me")} == set(ids.values())
    assert "(yours)" in dict((v, k) for k, v in shared.run_choices("me"))[ids["me"]]
    assert shared.publish("me", ids["you"]).startswith("Only your own")
    manager.shutdown()


def test_status_line_reads_like_the_playground():
    run = {"run_id": "r1", "name": "grpo", "steps": 10, "message": ""}
    queued = status_html({**run, "state": "queued", "step": 0, "queue_position": 3})
    assert "position 3 in the queue" in queued
    assert "step 4 of 10" in status_html({**run, "state": "running", "step": 4})
    assert "Paused" in status_html({**run, "state": "paused", "step": 4})
    assert "Done" in status_html({**run, "state": "done", "step": 10})
    failed = status_html({**run, "state": "failed", "step": 2, "message": "the reward became nan"})
    assert "Failed" in failed and "the reward became nan" in failed
    assert "Ready" in status_html(None)


def test_tabs_tick_more_slowly_when_a_crowd_watches(tmp_path):
    """With a budget of 2 ticks a second, 6 watching tabs are told to tick every 3 s; their ticks slow down."""
    with running_lab(tmp_path, tick_budget=2.0) as (manager, url, model):
        cfg = C.build("grpo", {"model.policy": model, "rollout.prompts_per_step": 2, "rollout.samples_per_prompt": 2,
                               "rollout.max_new_tokens": 4, "run.steps": 100_000})
        run_id = manager.submit(cfg, owner="someone")
        tabs = Watchers(url, run_id, 6)
        time.sleep(7)
        result = tabs.stop()
        manager.stop(run_id)
    assert not result["errors"], result["errors"]
    intervals = [t[3] for t in result["seen"]]
    assert intervals[0] == 1.0 and max(intervals) == 3.0  # 6 tabs / 2 per second, in half-second steps
    assert len(intervals) <= 6 * 4, "each tab ticked about every 3 s after the first second, not every second"


def test_the_checks_say_what_a_kl_estimator_in_the_loss_does():
    """Under the buttons: k1 in the loss charges a value but has no expected gradient (issue: KL told truthfully)."""
    from app.lab import advice_html
    from labcore.config import build

    assert "zero expected gradient" in advice_html(build("grpo", {"kl.estimator": "k1"}))
    assert advice_html(build("grpo")) == ""  # the default's k3 direction is told in the Objective panel
    assert advice_html(build("rloo")) == ""  # k1 in the reward is the textbook use; nothing to say
