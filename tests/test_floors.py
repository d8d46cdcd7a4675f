"""Dependencies that are true: pyproject.toml declares every package labcore and the app import, each with a floor
and the reason for it on its line, and the floor lane (.ci/floors) installs exactly those floors.

The lane itself (a venv with transformers, peft, datasets, tokenizers and safetensors at their floors, running
the tests that meet their APIs) runs at the end of .ci/run; these tests pin what it reads.
"""

import ast
import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = (ROOT / "pyproject.toml").read_text()

# Imported, not declared: each comes with a declared package (or is optional and imported in a try).
TRANSITIVE = {
    "huggingface_hub": "transformers",
    "numpy": "torch",
    "orjson": "gradio",
    "pyarrow": "datasets",
    "spaces": "optional: a ZeroGPU Space provides it (app/space.py imports it in a try)",
}


def lane():
    spec = importlib.util.spec_from_file_location("floors", ROOT / ".ci" / "floors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def imported_packages() -> dict[str, str]:
    """{top-level third-party module: a file importing it} over labcore/ and app/."""
    found = {}
    for path in sorted([*ROOT.glob("labcore/**/*.py"), *ROOT.glob("app/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in (n.split(".")[0] for n in names):
                if top not in sys.stdlib_module_names and top not in ("labcore", "app"):
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_dependency_declares_a_floor_and_its_reason():
    declared = lane().declared(PYPROJECT)
    assert {"torch", "transformers", "peft", "datasets"} <= set(declared)
    for name, (floor, reason) in declared.items():
        assert floor, f"pyproject.toml: {name} has no '>=' floor"
        assert reason, f"pyproject.toml: {name}>={floor} has no comment saying why that floor"


def test_labcore_and_the_app_import_only_declared_packages():
    declared = {norm(n) for n in lane().declared(PYPROJECT)}
    imported = imported_packages()
    assert {"torch", "transformers", "peft"} <= set(imported)  # the scan sees the imports
    missing = {m: f for m, f in imported.items() if norm(m) not in declared and m not in TRANSITIVE}
    assert not missing, f"imported but not declared in pyproject.toml (add it with its floor): {missing}"
    stale = {m for m in TRANSITIVE if m not in imported or norm(m) in declared}
    assert not stale, f"TRANSITIVE lists packages no longer imported, or now declared: {stale}"


def test_the_lane_pins_each_floor_it_can_install():
    floors = lane()
    text = 'dependencies = [\n  "torch>=2.5",  # why\n  "transformers>=4.56",  # why\n  "gradio>=6.0,<7",  # ui\n' \
           '  "safetensors>=0.4.3",  # why\n  "tomli>=2.0; python_version < \'3.11\'",  # py310\n]\n[x]\ny = ["z>=1"]\n'
    assert floors.pins(text) == ["transformers==4.56", "safetensors==0.4.3"]
    assert floors.declared('dependencies = [\n  "peft",\n]')["peft"] == ("", "")
    declared = floors.declared(PYPROJECT)
    assert set(floors.KEPT) <= set(declared), "KEPT names a package pyproject.toml no longer declares"
    assert {p.split("==")[0] for p in floors.pins(PYPROJECT)} == set(declared) - set(floors.KEPT)
