"""The compiled synthesis engine is shared by checkouts (restyle/engine_cache.py).

Each test copies the restyle package to other paths (as a second clone would be) and runs
it in fresh interpreters with the same RESTYLE_CACHE_DIR.  The probe tests use a one-line
kernel (compiled in a fraction of a second); the engine tests compile the real engine once
each (10-60 CPU-seconds).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # compiles the synthesis engine from scratch

REPO = Path(__file__).resolve().parents[1]
NOTICE = "restyle: compiling the synthesis engine (once per machine and version"

# Synthesize from scratch and from an initial field (the two ways a gap uses the engine);
# print a hash of every output, which must not depend on whether the engine was compiled
# or loaded.
SYNTHESIZE = r"""
import hashlib, sys
import numpy as np
import restyle.synthesis as s
assert s.__file__.startswith(sys.argv[1]), (s.__file__, sys.argv[1])
rng = np.random.default_rng(0)
style = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
source = rng.random((24, 32, 3)).astype(np.float32) * 255
target = np.roll(source, 2, axis=1)
first = s.synthesize(style, [source], [target], [2.0], search_vote_iters=2, patchmatch_iters=1)
second = s.synthesize(style, [source], [target], [2.0], search_vote_iters=1, patchmatch_iters=1,
                      initial_nnf=first.nnf, coherence=10.0, output="nearest")
digest = hashlib.sha256()
for r in (first, second):
    for a in (r.image, r.error, r.nnf):
        digest.update(a.tobytes())
print(digest.hexdigest())
"""

PROBE_MODULE = '''
from numba import njit

from restyle import engine_cache


@njit(cache=True)
def add_one(x):
    return x + 1


engine_cache.watch(add_one, what="the probe")
'''

PROBE = r"""
import json, sys
import restyle._probe as p
assert p.__file__.startswith(sys.argv[1]), (p.__file__, sys.argv[1])
assert p.add_one(41) == 42
stats = p.add_one.stats
print(json.dumps({"path": stats.cache_path, "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values())}))
"""


def checkout(folder: Path, probe: str | None = None) -> Path:
    """A copy of the restyle package at ``folder``/restyle, without compiled files."""
    shutil.copytree(REPO / "restyle", folder / "restyle", ignore=shutil.ignore_patterns("__pycache__"))
    if probe is not None:
        (folder / "restyle" / "_probe.py").write_text(probe)
    return folder


def environment(cache: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    return {**env, "RESTYLE_CACHE_DIR": str(cache), **extra}


def start(where: Path, code: str, env: dict[str, str]) -> subprocess.Popen:
    # `python -c` puts the working directory first on sys.path: `import restyle` finds the copy.
    return subprocess.Popen([sys.executable, "-c", code, str(where)], cwd=where, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> tuple[str, str]:
    stdout, stderr = process.communicate(timeout=900)
    assert process.returncode == 0, stderr
    return stdout.strip().splitlines()[-1], stderr


def run(where: Path, code: str, env: dict[str, str]) -> tuple[str, str]:
    return finish(start(where, code, env))


def cache_files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def test_probe_cache_is_shared_by_checkouts_and_keyed_by_content(tmp_path):
    cache = tmp_path / "cache"
    env = environment(cache)
    first = checkout(tmp_path / "a", PROBE_MODULE)
    second = checkout(tmp_path / "b", PROBE_MODULE)
    edited = checkout(tmp_path / "c", PROBE_MODULE + "# another version\n")

    out, err = run(first, PROBE, env)
    compiled = json.loads(out)
    assert compiled["misses"] == 1 and compiled["hits"] == 0
    assert Path(compiled["path"]).parent == cache / "numba"
    assert err.count("restyle: compiling the probe") == 1
    assert not list((first / "restyle" / "__pycache__").glob("_probe*.nb*"))

    out, err = run(second, PROBE, env)
    loaded = json.loads(out)
    assert loaded == {"path": compiled["path"], "hits": 1, "misses": 0}
    assert "restyle: compiling" not in err

    out, err = run(edited, PROBE, env)  # other source bytes: its own folder, compiled again
    other = json.loads(out)
    assert other["misses"] == 1 and other["path"] != compiled["path"]
    assert Path(other["path"]).parent == cache / "numba"
    assert "restyle: compiling the probe" in err


def test_unusable_cache_dir_falls_back_to_numbas_default(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    where = checkout(tmp_path / "a", PROBE_MODULE)
    env = environment(blocked)
    for expected in ({"misses": 1, "hits": 0}, {"misses": 0, "hits": 1}):
        out, err = run(where, PROBE, env)
        result = json.loads(out)
        assert {k: result[k] for k in expected} == expected, err
        # numba's own choice: the __pycache__ next to the source
        assert Path(result["path"]) == where / "restyle" / "__pycache__"
    assert blocked.read_text() == "a file where the cache folder would go"


def test_engine_compiles_once_for_two_checkouts(tmp_path):
    cache = tmp_path / "cache"
    env = environment(cache)
    first, second = checkout(tmp_path / "one"), checkout(tmp_path / "two")

    digest, err = run(first, SYNTHESIZE, env)
    assert err.count(NOTICE) == 1, err
    saved = cache_files(cache)
    assert any(name.endswith(".nbc") for name in saved)
    assert not list((first / "restyle" / "__pycache__").glob("*.nb*"))

    again, err = run(second, SYNTHESIZE, env)
    assert NOTICE not in err, err
    assert again == digest
    assert cache_files(cache) == saved  # loaded, nothing compiled or written


def test_engine_compiles_once_for_two_jobs_starting_at_once(tmp_path):
    cache = tmp_path / "cache"
    env = environment(cache)
    jobs = [start(checkout(tmp_path / name), SYNTHESIZE, env) for name in ("one", "two")]
    results = [finish(job) for job in jobs]
    notices = [err.count(NOTICE) for _, err in results]
    assert sorted(notices) == [0, 1], [err for _, err in results]
    assert results[0][0] == results[1][0]
