"""requirements.lock: every package the project installs, pinned, so each host gets the same set.

``python tools/lock.py`` (``make lock``) compiles pyproject.toml with its dev extra for Python 3.11
on linux x86_64 with uv, keeping the versions the lock already names where they still fit (uv
reads the old lock as preferences), and heads the lock with a digest of pyproject's dependency
lists. ``python tools/lock.py --check`` (``make venv`` and tests/test_lock.py) fails when the lock
no longer matches pyproject.toml. Only the standard library here: it runs before any venv exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"
DIGEST_PREFIX = "# pyproject.toml dependencies sha256: "
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#]+)")


def normalized(name: str) -> str:
    """PEP 503: ``Keras_Tuner`` and ``keras-tuner`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_digest(pyproject: Path) -> str:
    """sha256 of what the lock is compiled from: Python range, dependencies and extras."""
    project = tomllib.loads(pyproject.read_text())["project"]
    compiled_from = {
        key: project.get(key)
        for key in ("requires-python", "dependencies", "optional-dependencies")
    }
    return hashlib.sha256(json.dumps(compiled_from, sort_keys=True).encode()).hexdigest()


def pins(lines: list[str]) -> dict[str, str]:
    """Package -> version of every ``name==version`` line (extras and markers dropped)."""
    found = {}
    for line in lines:
        match = PIN.match(line.strip())
        if match:
            found[normalized(match.group(1))] = match.group(3)
    return found


def mismatches(pyproject: Path, lock: Path) -> list[str]:
    """What is wrong with ``lock`` for ``pyproject``, each a sentence; empty when it matches."""
    if not lock.is_file():
        return [f"{lock.name} is missing: run `make lock`"]
    lock_lines = lock.read_text().splitlines()
    project = tomllib.loads(pyproject.read_text())["project"]
    wanted = pins(
        [*project["dependencies"], *sum(project.get("optional-dependencies", {}).values(), [])]
    )
    locked = pins(lock_lines)
    problems = [
        f"pyproject.toml pins {name}=={version}, {lock.name} has "
        f"{locked[name] if name in locked else 'no ' + name}"
        for name, version in sorted(wanted.items())
        if locked.get(name) != version
    ]
    header = lock_lines[0] if lock_lines else ""
    if header != DIGEST_PREFIX + dependency_digest(pyproject):
        problems.append(f"{lock.name} was not compiled from this pyproject.toml: run `make lock`")
    return problems


def compile_lock(pyproject: Path, lock: Path) -> None:
    """Resolve with uv into ``lock`` (its old pins preferred), then add the digest line."""
    command = [
        *(sys.executable, "-m", "uv", "pip", "compile", str(pyproject), "--extra", "dev"),
        *("--python-version", "3.11", "--python-platform", "x86_64-unknown-linux-gnu"),
        *("--custom-compile-command", "make lock", "--quiet", "--output-file", str(lock)),
    ]
    subprocess.run(command, check=True, cwd=pyproject.parent)
    compiled = lock.read_text()
    lock.write_text(f"{DIGEST_PREFIX}{dependency_digest(pyproject)}\n{compiled}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the lock; exit 1 if stale")
    args = parser.parse_args(argv)
    if not args.check:
        compile_lock(PYPROJECT, LOCK)
    problems = mismatches(PYPROJECT, LOCK)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
