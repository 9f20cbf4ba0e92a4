"""Fault injection for tests/test_faults.py, loaded by every Python process of a test run
(this folder is put on PYTHONPATH).  Inert unless RESTYLE_TEST_FREEZE is set.

RESTYLE_TEST_FREEZE="write:<glob>:<n>" freezes the process right after its n-th
``os.replace`` onto a path matching <glob> (every staged write of restyle ends in one), and
"rmtree:<glob>:<n>" freezes Snakemake half-way through deleting the n-th matching directory
(a temp() output).  A frozen process touches RESTYLE_TEST_FREEZE_FLAG, and the test then
kills the whole run, so the moment of the kill is exact however loaded the machine is.
"""

import fnmatch
import os
import shutil
import time

_SPEC = os.environ.get("RESTYLE_TEST_FREEZE")


def _freeze():
    flag = os.environ["RESTYLE_TEST_FREEZE_FLAG"]
    with open(flag, "a") as handle:
        handle.write(f"{os.getpid()}\n")
    while True:
        time.sleep(1)


if _SPEC:
    _KIND, _GLOB = _SPEC.split(":", 1)[0], _SPEC.split(":", 1)[1].rsplit(":", 1)[0]
    _NTH = int(_SPEC.rsplit(":", 1)[1])
    _seen = [0]

    def _matches(path) -> bool:
        if fnmatch.fnmatch(os.path.abspath(os.fspath(path)), _GLOB):
            _seen[0] += 1
            return _seen[0] == _NTH
        return False

    if _KIND == "write":
        _replace = os.replace

        def _replace_then_freeze(src, dst, *args, **kwargs):
            _replace(src, dst, *args, **kwargs)
            if _matches(dst):
                _freeze()

        os.replace = _replace_then_freeze
    elif _KIND == "rmtree":
        _rmtree = shutil.rmtree

        def _rmtree_half_then_freeze(path, *args, **kwargs):
            if not _matches(path):
                return _rmtree(path, *args, **kwargs)
            files = sorted(os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names)
            for name in files[: len(files) // 2]:
                os.unlink(name)
            _freeze()

        shutil.rmtree = _rmtree_half_then_freeze
