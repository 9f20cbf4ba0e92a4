"""Where restyle's compiled numba kernels are kept, and a notice when they must be compiled.

numba's ``cache=True`` keeps compiled kernels in ``__pycache__`` next to the source file, so
every checkout (a second clone, a CI workspace, a copy on a cluster's scratch) compiles the
synthesis engine again, silently, for a minute or more.  Importing this module registers a
cache locator for the modules of the restyle package only (other libraries keep numba's own
behaviour) that puts their kernels in one per-user directory::

    $RESTYLE_CACHE_DIR/numba           if RESTYLE_CACHE_DIR is set
    $NUMBA_CACHE_DIR/restyle           else if NUMBA_CACHE_DIR is set
    $XDG_CACHE_HOME/restyle/numba      else (XDG_CACHE_HOME defaults to ~/.cache)

in a subfolder named by a hash of the module's source *bytes*, the numba, llvmlite, numpy
and Python versions and the platform; not by the file's path or modification time.  Two
checkouts of the same version therefore share one compiled engine, and two versions never
overwrite each other's.  The compiled code is exactly what numba compiles anyway: numba's
own index still keys every entry by signature, CPU model and features and the function's
bytecode, so a cache shared by different machines never hands one CPU another's code.  As
with numba's own cache, a kernel is keyed by its own file: the kernels must not call jitted
functions of other modules.

Where that directory cannot be created or written, numba's own locators take over (the
``__pycache__`` next to the source, then numba's user-wide cache); an unreadable entry or a
failed write means a compile, never an error.

:func:`watch` adds the rest, for a set of kernels: a one-line notice on stderr when one of
them really has to be compiled (nothing when the cache is warm), and a file lock so that
jobs starting at once on a fresh machine compile once: the first takes the lock, the others
wait for it and then load what it saved.  The lock is taken at the first cache miss and
released when the outermost call of a function decorated with :func:`compile_session`
returns, so that one process compiles all the kernels that call needs; a kernel called
outside such a call holds it for its own compile only.  A process that dies releases it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import sys
import threading
import time

import numba
from numba.core import caching, event

__all__ = ["cache_root", "compile_session", "watch"]

_PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))
_LOCK_NAME = "compile.lock"
LOCK_WAIT_S = 900.0  # longest wait for another process's compile before compiling anyway

log = logging.getLogger("restyle")


def cache_root() -> str:
    """The directory restyle's compiled kernels go to (see the module docstring)."""
    restyle_dir = os.environ.get("RESTYLE_CACHE_DIR")
    if restyle_dir:
        return os.path.join(os.path.abspath(os.path.expanduser(restyle_dir)), "numba")
    if numba.config.CACHE_DIR:
        return os.path.join(os.path.abspath(os.path.expanduser(numba.config.CACHE_DIR)), "restyle")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(base), "restyle", "numba")


def _toolchain() -> bytes:
    import llvmlite
    import numpy

    parts = (numba.__version__, llvmlite.__version__, numpy.__version__, sys.implementation.name,
             platform.python_version(), getattr(sys, "abiflags", ""), sys.platform, platform.machine())
    return "\0".join(parts).encode()


@functools.lru_cache(maxsize=None)
def _source_key(path: str, size: int, mtime_ns: int) -> tuple[bytes, str]:
    """(sha256 of the source bytes, hex key of source + toolchain).  The stat arguments only
    make the memo notice a changed file; the key depends on the bytes alone."""
    with open(path, "rb") as f:
        source = hashlib.sha256(f.read()).digest()
    return source, hashlib.sha256(source + b"\0" + _toolchain()).hexdigest()[:20]


def _is_restyle_source(py_file: str) -> bool:
    try:
        path = os.path.realpath(py_file)
    except (OSError, ValueError):
        return False
    return path.endswith(".py") and path.startswith(_PACKAGE_DIR + os.sep) and os.path.isfile(path)


class ContentKeyedLocator(caching._CacheLocator):
    """numba cache locator for restyle's modules: one per-user directory, keyed by content."""

    def __init__(self, py_func, py_file):
        self._lineno = py_func.__code__.co_firstlineno
        st = os.stat(py_file)
        self._stamp, key = _source_key(os.path.realpath(py_file), st.st_size, st.st_mtime_ns)
        module = os.path.splitext(os.path.basename(py_file))[0]
        self._cache_path = os.path.join(cache_root(), f"{module}-{key}")

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        # numba's default is the file's mtime and size (a content hash in newer releases);
        # here the content, so that copies of the file at other paths or times match.
        return self._stamp

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        if not _is_restyle_source(py_file):
            return None
        try:
            self = cls(py_func, py_file)
            self.ensure_cache_path()  # creates it and checks that a file can be written there
        except Exception as error:  # noqa: BLE001 - any failure: numba's own locators take over
            log.debug("restyle cache directory unusable (%s); numba's default cache is used", error)
            return None
        return self


def _register_locator() -> None:
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    locators = getattr(impl, "_locator_classes", None)
    if not isinstance(locators, list):  # numba's internals changed: keep its default behaviour
        log.debug("numba has no CacheImpl._locator_classes; restyle's cache locator not registered")
        return
    if not any(getattr(c, "__qualname__", "") == ContentKeyedLocator.__qualname__
               and getattr(c, "__module__", "") == __name__ for c in locators):
        locators.insert(0, ContentKeyedLocator)


_register_locator()


# --------------------------------------------------------------------------------------
# Compile notice and lock
# --------------------------------------------------------------------------------------

class _State:
    guard = threading.RLock()
    lock_file = None          # open file holding the flock, while this process holds it
    sessions = 0              # depth of compile_session calls, all threads together
    watched: dict[int, tuple[str, str]] = {}  # id(dispatcher) -> (what, how long)
    noticed = False
    listener = None


def _say(message: str) -> None:
    log.info("%s", message)
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):  # no usable stderr
        pass


def _take_lock(directory: str, what: str) -> None:
    """Hold the compile lock of ``directory`` (wait while another process holds it); on any
    failure go on without it: the worst case is a compile done twice."""
    import fcntl

    if _State.lock_file is not None:
        return
    try:
        lock_file = open(os.path.join(directory, _LOCK_NAME), "a")
    except OSError as error:
        log.debug("no compile lock in %s: %s", directory, error)
        return
    deadline = time.monotonic() + LOCK_WAIT_S
    waited = False
    while True:
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                log.warning("gave up waiting for the compile lock %s after %.0f s",
                            lock_file.name, LOCK_WAIT_S)
                lock_file.close()
                return
            if not waited:
                waited = True
                _say(f"restyle: waiting for another job to finish compiling {what}")
            time.sleep(0.2)
        except OSError as error:  # e.g. a file system without locks
            log.debug("cannot lock %s: %s", lock_file.name, error)
            lock_file.close()
            return
    _State.lock_file = lock_file


def _release_lock() -> None:
    lock_file, _State.lock_file = _State.lock_file, None
    if lock_file is not None:
        lock_file.close()  # closing the last descriptor releases the flock


def compile_session(func):
    """Decorator for the entry point that calls the watched kernels: the compile lock taken
    during a call is released when the outermost call returns."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with _State.guard:
            _State.sessions += 1
        try:
            return func(*args, **kwargs)
        finally:
            with _State.guard:
                _State.sessions -= 1
                if _State.sessions == 0:
                    _release_lock()

    return wrapper


class _CompileListener(event.Listener):
    """Prints the notice when a watched kernel is compiled rather than loaded from the cache
    (numba broadcasts "numba:compile" only after a cache miss)."""

    def on_start(self, ev):
        data = ev.data or {}
        watched = _State.watched.get(id(data.get("dispatcher")))
        if watched is None:
            return
        with _State.guard:
            first, _State.noticed = not _State.noticed, True
        if first:
            what, takes = watched
            self.began = time.perf_counter()
            _say(f"restyle: compiling {what} (once per machine and version{takes})")

    def on_end(self, ev):
        data = ev.data or {}
        dispatcher = data.get("dispatcher")
        if id(dispatcher) in _State.watched:
            cache = getattr(dispatcher, "_cache", None)
            log.info("compiled %s in %.1f s since the notice (cache: %s)",
                     getattr(dispatcher, "__name__", "kernel"),
                     time.perf_counter() - getattr(self, "began", time.perf_counter()),
                     getattr(cache, "cache_path", None))


def _serialise(dispatcher, what: str) -> None:
    """Wrap the dispatcher's disk cache: on a miss take the compile lock and look again
    (another process may have just saved the kernel); unreadable entries and failed writes
    count as misses instead of errors."""
    cache = getattr(dispatcher, "_cache", None)
    directory = getattr(cache, "cache_path", None)
    load, save = getattr(cache, "load_overload", None), getattr(cache, "save_overload", None)
    if not directory or load is None or save is None or getattr(cache, "_restyle_wrapped", False):
        return  # caching is off for it (NullCache) or already wrapped

    def safe_load(sig, target_context):
        try:
            return load(sig, target_context)
        except Exception as error:  # noqa: BLE001 - a damaged entry: compile it again
            log.warning("ignoring an unreadable cache entry in %s (%s: %s); it is rewritten",
                        directory, type(error).__name__, error)
            try:
                cache.flush()  # an empty index in its place, so that the new compile is saved
            except Exception:  # noqa: BLE001
                pass
            return None

    def release_outside_sessions():
        # A kernel called outside compile_session: hold the lock for this one compile only.
        with _State.guard:
            if _State.sessions == 0:
                _release_lock()

    def load_overload(sig, target_context):
        found = safe_load(sig, target_context)
        if found is None and _State.lock_file is None:
            _take_lock(directory, what)
            found = safe_load(sig, target_context)
            if found is not None:
                release_outside_sessions()
        return found

    def save_overload(sig, data):
        try:
            save(sig, data)
        except Exception as error:  # noqa: BLE001 - not cached: the next process compiles again
            log.warning("could not save a compiled kernel to %s (%s: %s)", directory,
                        type(error).__name__, error)
        finally:
            release_outside_sessions()

    cache.load_overload = load_overload
    cache.save_overload = save_overload
    cache._restyle_wrapped = True


def watch(*dispatchers, what: str, takes: str = "") -> None:
    """Announce and serialise the compiles of these ``cache=True`` kernels (see the module
    docstring).  ``what`` names them in the notice, ``takes`` says how long, e.g.
    ``", about a minute"``."""
    with _State.guard:
        for dispatcher in dispatchers:
            _State.watched[id(dispatcher)] = (what, takes)
            _serialise(dispatcher, what)
        if _State.listener is None:
            _State.listener = _CompileListener()
            event.register("numba:compile", _State.listener)
