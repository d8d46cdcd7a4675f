"""Presenter mode's server half (issue 13): the key chart of every recipe, and the room link's rules."""

from app import figures, present
from app.lab import Lab, status_html
from labcore import config as C
from labcore.recipes import RECIPES
from labcore.runner import RunManager


def test_every_recipe_has_a_key_chart_that_exists():
    ids = {c.id for c in figures.CHARTS}
    assert set(present.KEY_CHART) == set(RECIPES), "a new recipe needs its key chart for presenter mode"
    assert set(present.KEY_CHART.values()) <= ids - {"reward", "kl"} and present.DEFAULT_KEY in ids
    assert 'data-recipe="ppo"' in status_html({"run_id": "r", "recipe": "ppo", "state": "running", "step": 1,
                                               "steps": 2}), "the page script reads the recipe from the status"


def test_the_room_link_is_the_presenter_url_and_a_shared_server_publishes_only_the_owners_run(tmp_path):
    manager = RunManager(tmp_path)
    try:
        mine = manager.store.create(C.build("grpo"), "me")
        theirs = manager.store.create(C.build("grpo"), "them")
        lab = Lab(manager, shared=True)
        assert present.room_link(lab, "me", None, "http://h/")[0] == ""
        url, note = present.room_link(lab, "me", mine, "http://h:7860/")
        assert url == f"http://h:7860/?run={mine}&present=1" and "Published" in note
        assert manager.status(mine)["published"], "attendees of a shared server can open only published runs"
        assert present.room_link(lab, "me", theirs, "http://h/") == (
            "", "This run is not published: only its owner can share it with the room.")
        assert not manager.status(theirs).get("published")
        manager.publish(theirs)
        assert present.room_link(lab, "me", theirs, "http://h/")[0] == f"http://h/?run={theirs}&present=1"
        assert f'href="http://h/?run={theirs}&amp;present=1"' in present.room_html(
            *present.room_link(lab, "me", theirs, "http://h/"))
    finally:
        manager.shutdown()


def test_the_page_script_carries_the_key_charts_and_its_own_css():
    js = present.page_js("() => { window.other = 1; }")
    assert js.startswith("() => {") and "window.other = 1" in js and '"ppo": "clip"' in js
    assert "rl-present-css" in js and "__" not in js.replace("__proto__", "")
