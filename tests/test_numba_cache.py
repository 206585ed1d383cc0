"""numba's compiled code goes under the tool's cache, and a user's own NUMBA_CACHE_DIR is left alone.

Each case runs in a new process: numba reads the variable once, when imported, and the test's own environment stays
as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

CHILD = ("import json, os; from model.cluster import keep_numba_code_in_cache; keep_numba_code_in_cache(); "
         "import numba; print(json.dumps([os.environ.get('NUMBA_CACHE_DIR'), numba.config.CACHE_DIR]))")


def _child(env: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"} | {"PYTHONPATH": str(ROOT)} | env
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_numba_code_goes_under_the_tools_cache(tmp_path: Path) -> None:
    variable, numba_dir = _child({"THEME_TAGGER_CACHE": str(tmp_path / "cache")})
    assert variable == numba_dir == str(tmp_path / "cache" / "numba")
    assert (tmp_path / "cache" / "numba").is_dir()


def test_a_users_numba_cache_dir_is_left_alone(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    variable, numba_dir = _child({"THEME_TAGGER_CACHE": str(tmp_path / "cache"), "NUMBA_CACHE_DIR": str(mine)})
    assert variable == numba_dir == str(mine)
    assert not (tmp_path / "cache" / "numba").exists()
