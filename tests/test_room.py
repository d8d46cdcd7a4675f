"""A workshop on one server (issue 13): the bugs a room of attendees met, and shared mode's control of runs.

Driven through the public API with gradio_client (one Client = one browser session) against a real server in
shared mode, with real tiny runs (2 prompts x 2 samples, 4 new tokens: a step takes a fraction of a second).
The attacker test plays a second session that watches a published run and tries every control endpoint on it.
"""

import json
import time

import pytest
from gradio_client import Client
from ui_fixtures import running_lab

from app import figures, settings
from app.lab import Lab
from app.owners import Owners
from labcore import config as C
from labcore.runner import RunManager

PAUSE_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with running_lab(tmp_path_factory.mktemp("runs"), shared=True, pause_timeout=PAUSE_TIMEOUT) as lab:
        yield lab


def small(model: str, **over) -> dict:
    return {"model_policy": model, "rollout_prompts_per_step": 2, "rollout_samples_per_prompt": 2,
            "rollout_max_new_tokens": 4, "run_steps": 4, "run_log_samples": 2, "run_grad_variance": False, **over}


def outputs(client: Client, api_name: str, result: tuple) -> dict:
    labels = [r["label"] for r in client.view_api(return_format="dict", print_info=False)
              ["named_endpoints"][api_name]["returns"]]
    return dict(zip(labels, result))


def details(client: Client) -> dict:
    return client.predict(api_name="/status")[1]


def poll(client: Client, until, timeout: float = 120.0) -> dict:
    end = time.monotonic() + timeout
    while True:
        d = details(client)
        if until(d) or time.monotonic() > end:
            return d
        time.sleep(0.2)


def finished(d: dict) -> bool:
    return d["state"] in ("done", "stopped", "failed", "cancelled")


def test_step_is_exactly_one_update_per_press(lab):
    """Bug 1: five presses moved a paused run 71 -> 72 -> 74 -> 77 -> 81 -> 86; each press must add one step."""
    manager, url, model = lab
    c = Client(url, verbose=False)
    for n in range(1, 6):
        c.predict(**small(model, run_steps=50), api_name="/step")
        d = poll(c, lambda d, n=n: d["records"] >= n and d["state"] == "paused" or d["state"] == "failed")
        assert d["records"] == n, d
    time.sleep(1.0)  # a paused run with no budget left takes no further step
    d = details(c)
    assert d["records"] == 5 and d["state"] == "paused", d
    c.predict(api_name="/stop")
    assert manager.wait(d["run_id"], 60)["step"] == 5


def test_a_published_run_is_watchable_and_nobody_else_controls_it(lab):
    """Bug 2 and 3, and shared mode's security: B watches A's published run (with `published` and `created` in
    its status), sees no owner id anywhere, and cannot pause, step, stop, reset or list A's runs."""
    manager, url, model = lab
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    a.predict(**small(model, run_steps=2), api_name="/start")
    private_id = poll(a, finished)["run_id"]  # A's first run: finished, never published
    a.predict(**small(model, run_steps=200), api_name="/start")
    shared_id = details(a)["run_id"]
    assert shared_id != private_id
    assert "Published" in a.predict(api_name="/publish")
    a_owner = manager.store.meta(shared_id)["owner"]
    seen_by_b: list = []

    def b_call(api_name: str, **kw):
        result = b.predict(**kw, api_name=api_name)
        seen_by_b.append(result)
        return result

    def a_run() -> dict:
        return manager.status(shared_id)

    b_call("/watch", run_id=shared_id)
    d = b_call("/status")[1]
    assert d["run_id"] == shared_id and d["published"] is True and d["created"] > 0 and d["yours"] is False
    assert "owner" not in d
    assert time.strftime("%H:%M", time.localtime(d["created"])) == time.strftime("%H:%M", time.localtime(
        manager.store.meta(shared_id)["created"])), "the run's real creation time, not 00:00"
    for api in ("/pause", "/stop"):
        out = outputs(b, api, b_call(api))
        assert "only its owner can control it" in out["problems"]
        assert a_run()["state"] == "running", f"{api} by another session changed the run"
    b_call("/reset")  # clears B's view only
    assert a_run()["state"] == "running"
    b_call("/watch", run_id=shared_id)
    before = a_run()["step"]
    step_out = outputs(b, "/step", b_call("/step", **small(model)))  # starts B's own paused run instead
    b_own = details(b)["run_id"]
    assert b_own != shared_id and manager.store.meta(b_own)["owner"] == Owners.of_session(b.session_hash)
    poll(a, lambda d: d["step"] > before + 2)
    assert a_run()["state"] == "running", "B's Step must not pause A's run"

    # B lists its own and the published run only, and cannot open A's private run
    listed = {v for _, v in step_out["Watch a run"]["choices"]}
    assert listed == {shared_id, b_own}
    b_call("/watch", run_id=private_id)
    assert b_call("/status")[1]["run_id"] == b_own
    assert a_owner not in json.dumps(seen_by_b, default=str), "an API answer leaked the publisher's owner id"

    # no endpoint takes an owner from the client
    api = b.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert not [(name, p["parameter_name"]) for name, e in api.items() for p in e["parameters"]
                if "owner" in p["parameter_name"]]
    b.predict(api_name="/stop")
    a.predict(api_name="/stop")  # the owner still controls it
    assert manager.wait(shared_id, 60)["state"] == "stopped"


def post_live(url: str, client: Client, lr: float, kl_coef: float, temperature: float) -> str:
    """The live-change endpoint (lr, beta, temperature of a going run) as the browser calls it: plain HTTP under
    the client's session. It is private to the API docs and the client library, not to an attacker. The data
    also claims a run id and an owner, which the server must ignore (they are server-side session state)."""
    import urllib.request

    body = json.dumps({"data": ["someone-else", "a-run-id", lr, kl_coef, temperature],
                       "session_hash": client.session_hash}).encode()
    req = urllib.request.Request(f"{url.rstrip('/')}/gradio_api/run/live", body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["data"][0]


def test_live_changes_to_another_sessions_run_are_refused(lab):
    """Shared mode: B watches A's published, running run and sends a live change (lr, beta, temperature). It is
    refused with a reason, and A's run trains on with its own settings. A's own change lands, with the same call
    (so the test can see a change)."""
    manager, url, model = lab
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    a.predict(**small(model, run_steps=200), api_name="/start")  # the shared server's cap
    run_id = details(a)["run_id"]
    a.predict(api_name="/publish")
    b.predict(run_id=run_id, api_name="/watch")
    assert details(b)["run_id"] == run_id
    cfg = Lab(manager).config(run_id)
    lr, beta, temp = cfg.optim.lr, cfg.kl.coef, cfg.rollout.temperature

    note = post_live(url, b, 0.5, 0.9, 1.7)
    assert "only its owner can change it live" in note
    seen = len(manager.store.metrics(run_id))
    poll(a, lambda d: d["records"] >= seen + 3 or finished(d))
    rows = manager.store.metrics(run_id)
    assert len(rows) >= seen + 3 and not [r for r in rows if r.get("live")], "B's change reached A's run"
    assert {r["lr"] for r in rows} == {lr} and manager.status(run_id)["state"] == "running"

    assert "apply from the next step" in post_live(url, a, lr / 2, beta, temp)
    poll(a, lambda d: any(r.get("live") for r in manager.store.metrics(run_id)) or finished(d))
    changed = [r for r in manager.store.metrics(run_id) if r.get("live")]
    assert changed and changed[0]["live"] == {"lr": lr / 2} and changed[0]["lr"] == lr / 2
    a.predict(api_name="/stop")
    manager.wait(run_id, 60)


def test_the_settings_shown_are_the_watched_runs(lab):
    """Bug 6: a tab that watches a run shows that run's settings and formula, not its own controls'."""
    manager, url, model = lab
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    a.predict(**small(model, algorithm_recipe="rloo", run_steps=20), api_name="/step")
    run_id = details(a)["run_id"]
    a.predict(api_name="/publish")
    out = outputs(b, "/watch", b.predict(run_id=run_id, api_name="/watch"))
    assert out["recipe"] == "rloo" and out["prompts per step (P)"] == 2 and out["max new tokens"] == 4
    assert "RLOO" in out["objective"] and "the run shown" in out["objective"]
    a.predict(api_name="/stop")
    manager.wait(run_id, 60)


def test_a_paused_run_gives_the_device_to_the_queue(lab):
    """Bug 5: a paused run (in a tab that was closed) held the only device while another tab was 'Queued,
    position 1' with no reason. Now the queued tab says what it waits for, and the paused run is stopped
    PAUSE_TIMEOUT seconds after its last step."""
    manager, url, model = lab
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    a.predict(**small(model, run_steps=50), api_name="/step")
    paused = poll(a, lambda d: d["state"] == "paused" and d["records"] == 1)
    a.close()  # the tab is gone
    out = outputs(b, "/start", b.predict(**small(model, run_steps=3), api_name="/start"))
    waiting = details(b)
    assert waiting["state"] == "queued", waiting
    assert "paused at step 1" in waiting["waiting_for"] and "paused at step 1" in out["run status"]
    assert poll(b, finished)["state"] == "done"
    st = manager.status(paused["run_id"])
    assert st["state"] == "stopped" and "while another run waited" in st["message"], st


def test_live_change_is_recorded_and_marked_at_its_step(tmp_path):
    """Bug 7: a live change is recorded with the step it took effect (and its delay), and marked on the charts."""
    from ui_fixtures import require_model

    manager = RunManager(tmp_path)
    try:
        cfg = C.build("grpo", {"model.policy": require_model(), "rollout.prompts_per_step": 2,
                               "rollout.samples_per_prompt": 2, "rollout.max_new_tokens": 4, "run.steps": 10})
        run_id = manager.submit(cfg, owner="a", paused=True)
        end = time.monotonic() + 60

        def wait_records(n: int) -> None:
            while len(manager.store.metrics(run_id)) < n and time.monotonic() < end:
                time.sleep(0.05)

        manager.step_once(run_id)
        wait_records(1)
        manager.set_live(run_id, lr=2e-3, kl_coef=cfg.kl.coef)  # an unchanged β is not a change
        manager.step_once(run_id)
        wait_records(2)
        rows = manager.store.metrics(run_id)
        changes = [(r["step"], r.get("live")) for r in rows]
        assert changes[-1] == (rows[-1]["step"], {"lr": 2e-3}) and rows[-1]["lr"] == 2e-3
        assert [c for c in changes[:-1] if c[1]] == [] and rows[-1]["live/delay_s"] >= 0
        charts = figures.build_figures(Lab(manager).run_views(run_id, []))
        for chart in charts:
            if chart["data"] and any(len(t["x"]) for t in chart["data"]):
                assert [s["x0"] for s in chart["layout"]["shapes"]] == [rows[-1]["step"]]
                assert any(n["text"] == "lr 0.002" for n in chart["layout"]["annotations"])
    finally:
        manager.shutdown()


def test_compared_runs_have_distinct_colours_that_they_keep(tmp_path):
    """Bug 4: colour = hash of the id drew 3 of 9 runs in one colour. Runs on screen are distinct, and a run
    keeps its colour from one comparison to the next."""
    manager = RunManager(tmp_path)
    try:
        ids = [manager.store.create(C.build("grpo"), "me") for _ in range(9)]
        lab = Lab(manager)
        views = lab.run_views(ids[0], ids[1:])
        colors = {v.run_id: v.color for v in views}
        assert len(set(colors.values())) == 9
        again = lab.run_views(ids[4], [ids[7], ids[1]])
        assert {v.run_id: v.color for v in again} == {i: colors[i] for i in (ids[4], ids[7], ids[1])}
        reward = figures.build_figures(views)[0]
        assert reward["data"] == [] or len({t["line"]["color"] for t in reward["data"]}) == 9
    finally:
        manager.shutdown()


def test_colours_stay_distinct_beyond_the_palette_cycle():
    """Runs 12 apart share a preferred colour; on one screen the later takes a free one."""
    got = figures.assign_colors([("a", 0), ("b", 12), ("c", 1)])
    assert len(set(got.values())) == 3 and got["a"] == figures.RUN_COLORS[0] and got["c"] == figures.RUN_COLORS[1]


def test_owner_tokens_are_signed_by_the_server(tmp_path):
    owners = Owners(tmp_path)
    token = owners.issue()
    assert owners.owner(token) and owners.owner(token) == Owners(tmp_path).owner(token), "survives a restart"
    nonce = token.split(".")[0]
    for forged in ("", "x", nonce, nonce + ".", nonce + "." + "0" * 32, Owners(tmp_path / "other").issue()):
        assert owners.owner(forged) is None, forged
    assert owners.owner(token) not in token, "the owner id written to meta.json is not the secret"


# ------------------------------------------------------------------------------------- bug 8: the small ones


def test_help_lists_the_serve_flags_and_the_share_hint_names_the_flag():
    from app.cli import parser
    from app.main import launch_hint

    text = parser().format_help()
    assert all(flag in text for flag in ("--host", "--port", "--share", "--shared", "--runs-dir", "--tick-budget"))
    hint = launch_hint("http://127.0.0.1:7860/", None)
    assert "--share" in hint and "share=True" not in hint


def test_charts_fit_constant_series_and_few_steps_and_do_not_smooth_beta():
    records = [{"step": 1, "time": 0.1, "reward/mean": 0.5, "kl/mean": 0.0, "kl/coef": 0.04}]
    reward, kl = figures.build_figures([figures.RunView("r1", "grpo", records)])[:2]
    assert reward["layout"]["yaxis"]["range"] == pytest.approx([0.45, 0.55]), "a constant series: not -1..1"
    assert reward["layout"]["xaxis"]["dtick"] == 1, "one point: whole-number step ticks"
    records += [{"step": s, "time": 0.1 * s, "reward/mean": 0.1 * s, "kl/mean": 0.0, "kl/coef": 0.04 if s < 3 else 0.1}
                for s in range(2, 5)]
    kl = figures.build_figures([figures.RunView("r2", "grpo", records)], smoothing=0.9)[1]
    beta = next(t for t in kl["data"] if t["name"] == "β")
    assert beta["y"] == [0.04, 0.04, 0.1, 0.1], "β is a setting: drawn as it was, not averaged"


def test_every_problem_of_the_settings_is_listed_at_once():
    from app import settings

    values = C.flat(C.build("grpo"))
    values.update({"optim.lr": None, "rollout.samples_per_prompt": "x", "algorithm.clip_low": 1.5})
    found = " | ".join(settings.every_problem(values))
    assert "optim.lr is empty" in found and "samples_per_prompt = 'x'" in found and "clip_low = 1.5" in found


def test_an_idle_start_says_starting_not_queued():
    from app.lab import status_html

    run = {"run_id": "r1", "name": "grpo", "steps": 10, "message": "", "state": "queued", "step": 0}
    assert "Starting" in status_html({**run, "queue_position": 1, "waiting_for": ""})
    waiting = status_html({**run, "queue_position": 1, "waiting_for": "waiting for the device: run x is running"})
    assert "Queued" in waiting and "run x is running" in waiting


def test_runs_table_lists_runs_with_records_and_ticks_overlay(tmp_path):
    """Runs as a table: swatch, name, diff from its recipe, state, steps, last reward and KL, an overlay box;
    a run without records is not listed; ticked rows become the overlaid runs, in their colours."""
    manager = RunManager(tmp_path)
    try:
        shown = manager.store.create(C.build("grpo"), "me")
        other = manager.store.create(C.build("rloo", {"optim.lr": 0.002}), "me")
        empty = manager.store.create(C.build("grpo"), "me")
        for run_id, reward in ((shown, 0.5), (other, 0.7)):
            manager.store.append(run_id, {"step": 1, "time": 0.1, "reward/mean": reward, "kl/mean": 0.01}, [])
        manager.store.update_meta(other, state="done", step=1)
        lab = Lab(manager)
        rows = lab.run_table("me", shown, [])
        assert [r[-1] for r in rows] == [other[-6:]], "the run shown and the empty run are not rows"
        tick, swatch, name, differs, state, steps, reward, kl, _ = rows[0]
        assert tick is False and "lr=0.002" in differs and state == "Done" and steps == "1/100"
        assert reward == 0.7 and kl == 0.01 and empty[-6:] not in [r[-1] for r in rows]
        rows[0][0] = True
        assert lab.overlay_ids("me", rows) == [other]
        color = lab.run_views(shown, [other])[1].color
        assert color in lab.run_table("me", shown, [other])[0][1], "the swatch is the colour it is drawn in"
    finally:
        manager.shutdown()


def test_picking_the_chain_task_moves_a_built_in_model_along_and_the_config_is_valid():
    """The chain task runs on its own built-in model: the task dropdown moves model.policy between 'tiny' and
    'tiny-chain' (and leaves a user's own model alone), so picking a task never leaves a config that cannot start."""
    from labcore.config import apply, build, validate

    assert settings.model_for_task("chain", "tiny") == "tiny-chain"
    assert settings.model_for_task("arithmetic", "tiny-chain") == "tiny"
    assert settings.model_for_task("chain", "tiny-chain") == "tiny-chain"
    assert settings.model_for_task("chain", "Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    for task in ("arithmetic", "sentiment", "length", "chain"):
        for policy in ("tiny", "tiny-chain"):
            cfg = apply(build("grpo"), {"rollout.task": task, "model.policy": settings.model_for_task(task, policy)})
            assert validate(cfg) == [], (task, policy)
    mismatch = validate(apply(build("grpo"), {"rollout.task": "chain", "model.policy": "tiny"}))
    assert any("tiny-chain" in p for p in mismatch), mismatch  # what the dropdown now prevents



def test_the_samples_step_slider_never_raises_its_minimum_above_an_empty_sliders_value():
    """A tick in flight carries the slider's old value (0) after the server moved its range: Gradio refuses a value
    below the minimum ('Value 0 is less than minimum value 1', a 500 seen in CI), so the range always keeps 0."""
    import gradio as gr

    from app import samples

    for steps in ([1], [2], [2, 3], [5, 9, 40]):
        span = samples.step_range(steps, follow=True)
        assert span["minimum"] == 0 and span["maximum"] == steps[-1] and span["value"] == steps[-1]
        assert "value" not in samples.step_range(steps, follow=False)
        slider = gr.Slider(0, 1, value=0, step=1)
        slider.minimum, slider.maximum = span["minimum"], span["maximum"]
        assert slider.preprocess(0) == 0  # the in-flight value is accepted
