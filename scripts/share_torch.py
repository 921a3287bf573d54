"""Link torch and its CUDA libraries from this venv into another one instead of installing them twice.

PyPI's Linux torch is the CUDA build: torch, triton and the nvidia-* wheels take 6.7 GB per venv. The
mjlab venv asks for the same torch version as the main one, so linking saves that much disk on every fresh
machine (CI ran out of space installing the second copy). Run with the main venv's interpreter, then pin
the same torch version when installing into the other venv (pip then finds it satisfied):

    .venv/bin/python scripts/share_torch.py .venv-mjlab
"""

from __future__ import annotations

import re
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

# torch's Linux requirements that are heavy (the CUDA runtime); the small pure-Python ones pip installs itself.
HEAVY = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")


def heavy_closure(name: str) -> list[str]:
    seen: list[str] = []
    todo = [name]
    while todo:
        dist_name = todo.pop()
        if dist_name in seen:
            continue
        try:
            dist = distribution(dist_name)
        except PackageNotFoundError:
            continue
        seen.append(dist_name)
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            required = re.split(r"[\s<>=!~;\[(]", requirement, maxsplit=1)[0].lower()
            if HEAVY.match(required):
                todo.append(required)
    return seen


def top_level_entries(dist_name: str) -> set[str]:
    entries = set()
    for file in distribution(dist_name).files or []:
        first = file.parts[0]
        if first not in ("..", "__pycache__"):
            entries.add(first)
    return entries


def main(target_venv: str) -> int:
    try:
        ours = distribution("torch").version
    except PackageNotFoundError:
        print("share_torch: no torch in this venv; the other venv installs its own")
        return 0
    source = Path(distribution("torch").locate_file(""))
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    target = Path(target_venv).resolve() / "lib" / version / "site-packages"
    if not target.is_dir():
        print(f"share_torch: {target} does not exist (is {target_venv} a venv of {version}?)", file=sys.stderr)
        return 1
    # Links left by an earlier torch of the main venv point nowhere now.
    for entry in target.iterdir():
        if entry.is_symlink() and not entry.exists():
            entry.unlink()
    linked = 0
    for dist_name in heavy_closure("torch"):
        for entry in sorted(top_level_entries(dist_name)):
            link = target / entry
            if link.exists() or link.is_symlink():
                continue
            link.symlink_to(source / entry)
            linked += 1
    print(f"share_torch: linked {linked} entries of torch {ours} and its CUDA libraries into {target}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: share_torch.py TARGET_VENV")
    sys.exit(main(sys.argv[1]))
