"""The package works outside the checkout: a wheel carries the tasks, templates and prompts, and the commands
run from an empty folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the tracked sources, so setuptools' build/ never lands in the checkout.
    source = out / "source"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    # No build isolation: the build uses the setuptools already installed, nothing is downloaded.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, cwd=out)
    return next(out.glob("robosmith-*.whl"))


def test_the_wheel_ships_tasks_templates_and_prompts(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("robosmith/task/tasks/so101_lift.yaml", "robosmith/engines/templates/mjlab/env_cfg.py.j2",
                   "robosmith/agent/prompts/system.j2", "robosmith/contract/state.py",
                   "robosmith/engines/package/train_loop.py"):
        assert needed in names, needed
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "robosmith.bc.policy:load" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_trains_and_exports_from_an_empty_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # The dependencies are this environment's (a path line adds the folder but runs none of its .pth files, so
    # the checkout's editable install stays out); robosmith itself comes from the wheel only.
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # --ignore-installed: never uninstall the robosmith of this environment on the way.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed",
                    "--prefix", str(venv),
                    str(wheel)], check=True)
    python, robosmith = venv / "bin" / "python", venv / "bin" / "robosmith"
    robosmith.write_text(f"#!{python}\nfrom robosmith.cli import app\napp()\n")  # pip wrote ours with its python
    robosmith.chmod(0o755)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "ROBOSMITH_RUNS")}
    where = subprocess.run([str(python), "-c", "import robosmith; print(robosmith.__file__)"], cwd=empty, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(venv)), where

    subprocess.run([str(robosmith), "train", "so101_reach", "--minutes", "0.2", "--eval-episodes", "4",
                    "--no-progress"], cwd=empty, env=env, check=True, capture_output=True)
    runs = list((empty / "runs").iterdir())
    assert len(runs) == 1 and json.loads((runs[0] / "eval.json").read_text())["episodes"] == 4
    subprocess.run([str(robosmith), "export", "so101_lift", "--target", "mjlab", "--out", "pkg"],
                   cwd=empty, env=env, check=True, capture_output=True)
    assert (empty / "pkg" / "robosmith_so101_lift" / "contract" / "state.py").is_file()
