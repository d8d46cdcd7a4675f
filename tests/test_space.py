"""The repository as a ZeroGPU Space: its files fit what ZeroGPU runs, and the entry point serves the lab.

`app.space.ZEROGPU` holds ZeroGPU's supported versions (with their source); these tests hold the README front
matter and requirements.txt to them, check that the checker catches each kind of mistake, follow the README's
Space section (the files it names exist), and start `space_app.py` as a Space does: `python space_app.py` with
PORT set, then poll it over HTTP on loopback.
"""

import json
import os
import re
import subprocess
import sys
import time
import types
import urllib.request
from pathlib import Path

import pytest
from ui_fixtures import free_port

from app import space

ROOT = Path(__file__).resolve().parent.parent


def test_repository_fits_zerogpu():
    assert space.space_problems(ROOT) == []
    meta = space.front_matter((ROOT / "README.md").read_text())
    assert meta["python_version"] in space.ZEROGPU.python
    assert meta["app_file"] == "space_app.py"
    assert space.requirement_pins((ROOT / "requirements.txt").read_text())["torch"][2:] in space.ZEROGPU.torch


def test_each_mistake_is_named(tmp_path):
    """Python 3.11, Gradio 5, an unpinned torch, gradio in requirements, a missing app file: five problems."""
    (tmp_path / "README.md").write_text('---\ntitle: x\nsdk: gradio\nsdk_version: 5.49.1\npython_version: "3.11"\n'
                                        "app_file: app.py\n---\n# x\n")
    (tmp_path / "requirements.txt").write_text("torch>=2.8  # any\ngradio\npeft\n")
    problems = space.space_problems(tmp_path)
    assert len(problems) == 5, problems
    for fragment in ("python_version '3.11'", "sdk_version 5.49.1", "app_file app.py", "torch>=2.8",
                     "names gradio"):
        assert any(fragment in p for p in problems), (fragment, problems)
    (tmp_path / "requirements.txt").write_text("torch==2.13.0\n")
    assert any("torch==2.13.0 is not pinned to a version ZeroGPU supports" in p
               for p in space.space_problems(tmp_path))
    (tmp_path / "README.md").write_text("# no front matter\n")
    assert "has no front matter" in space.space_problems(tmp_path)[0]


def test_readme_space_section_names_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Sharing on Hugging Face", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([\w./-]+\.(?:py|txt|md))`", section))
    assert {"space_app.py", "requirements.txt", "app/space.py", "labcore/chunks.py"} <= named
    assert [f for f in named if not (ROOT / f).is_file()] == []
    if (ROOT / ".git").exists():  # a fresh clone has only what git tracks
        tracked = subprocess.run(["git", "ls-files", *sorted(named)], cwd=ROOT, capture_output=True, text=True)
        assert set(tracked.stdout.split()) == named, "the README names files git does not track"


def test_gpu_decorator_is_a_no_op_without_spaces_and_spaces_gpu_with_it(monkeypatch):
    def fn(x):
        return x + 1

    monkeypatch.setitem(sys.modules, "spaces", None)  # `import spaces` raises ImportError
    assert space.gpu(30)(fn) is fn
    seen = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda duration: (lambda f: seen.append(duration) or (lambda *a: ("on gpu", f(*a))))
    monkeypatch.setitem(sys.modules, "spaces", fake)
    assert space.gpu(45)(fn)(1) == ("on gpu", 2) and seen == [45]


def test_entry_point_serves_the_lab_on_the_port_it_is_given(tmp_path):
    port = free_port()
    env = {**os.environ, "PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "RLHF_LAB_RUNS": str(tmp_path),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("GRADIO_SERVER_PORT", None)
    proc = subprocess.Popen([sys.executable, "space_app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        page, deadline = None, time.monotonic() + 180
        while page is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as resp:
                    page = resp.read().decode()
            except OSError:
                time.sleep(0.5)
        if page is None:
            proc.kill()
            pytest.fail(f"space_app.py did not serve on port {port}: {proc.communicate(timeout=30)[0][-3000:]}")
        assert json.loads(page)["title"] == "rlhf-lab"  # the lab's Blocks, not some other server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
