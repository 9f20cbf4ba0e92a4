"""File helpers for the workflow: images in RGB, arrays, JSON, all written atomically.

A job that is killed half-way must never leave a file that a rerun would trust, so every
writer here writes to a temporary name in the same directory and renames it into place
(``os.replace`` is atomic on POSIX).  Directory outputs are staged the same way.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np


class RestyleError(Exception):
    """A problem the user can fix; the message is one line naming the file and the fix.

    A rule script that dies of one prints just that line (see :func:`job_log`), not a traceback.
    """


class ImageError(RestyleError, ValueError):
    """An image file that cannot be used; the message names the file and the fix."""


class DiskFullError(RestyleError, OSError):
    """A write failed because the file system is full (or over quota)."""


# Written last into every staged directory: the names of the files it holds.  A directory
# output whose manifest is missing, or names a file that is not there, is not finished (it
# was being deleted when the run was killed) and is never taken as an input.
MANIFEST = ".restyle-complete"

# Environment variable through which the workflow tells its jobs how much disk the whole run
# still needs (estimated at parse time), so a job that fills the disk can say it.
DISK_NEEDED_ENV = "RESTYLE_DISK_NEEDED_MB"


def frame_name(index: int, suffix: str = ".png") -> str:
    return f"{index:05d}{suffix}"


def read_image_with_alpha(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an image file as uint8 RGB (gray expanded, 16-bit scaled) and its alpha channel
    (uint8), or None when it has none."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError(f"{path}: cannot read this image; save it as PNG, JPEG or TIFF")
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ImageError(f"{path}: unsupported pixel type {image.dtype}; save it as 8-bit PNG")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), None
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB), image[..., 3]
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB (alpha dropped, gray expanded, 16-bit scaled)."""
    return read_image_with_alpha(path)[0]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_stale_staging(parent: Path, pattern: str) -> None:
    """Staging leftovers of a writer that was killed (SIGKILL, a lost node) before it could
    clean up.  Only one job writes a given output at a time (Snakemake's lock), so a staging
    name of this output that exists now is from a dead writer."""
    for stale in parent.glob(pattern):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def free_mb(path: str | os.PathLike) -> float:
    """Free space, in MB, of the file system ``path`` is (or would be) on."""
    path = Path(path).absolute()
    for folder in (path, *path.parents):
        if folder.exists():
            return shutil.disk_usage(folder).free / 1e6
    return float("inf")


def _is_disk_full(error: OSError, path: Path) -> bool:
    # numpy and OpenCV report a short write without an errno ("N requested and M written"),
    # so an OSError on a file system with almost no space left counts too.
    return error.errno in (errno.ENOSPC, errno.EDQUOT) or free_mb(path) < 16


def disk_full_message(path: str | os.PathLike) -> str:
    """One line for a write to ``path`` that found the disk full: free and needed space, fix."""
    path = Path(path)
    needed = os.environ.get(DISK_NEEDED_ENV)
    need = f"; the run needed about {float(needed):,.0f} MB more when it started" if needed else ""
    return (f"{path}: disk full ({free_mb(path.parent):,.0f} MB free{need}); free some space or "
            "put results/ on a larger disk (a symlink works), then run the same command again: "
            "finished work is kept")


@contextlib.contextmanager
def disk_full_reported(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        # An inner write's error is re-said with this (outer) path: a directory output's
        # name, not that of a file in its staging folder.
        if isinstance(error, DiskFullError) or _is_disk_full(error, path):
            raise DiskFullError(disk_full_message(path)) from error
        raise


@contextlib.contextmanager
def staged_file(path: str | os.PathLike) -> Iterator[str]:
    """A temporary name beside ``path`` to write to; renamed onto ``path`` (with the
    permissions a new file gets) only when the block ends without an error, removed
    otherwise.  A full disk surfaces as :class:`DiskFullError`.  The one atomic file writer:
    every file output goes through it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(path.parent, f".{path.stem}.*{path.suffix}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        with disk_full_reported(path):
            yield tmp
        # mkstemp makes private files; outputs get the permissions any new file would.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_image(path: str | os.PathLike, image: np.ndarray, compression: int = 1) -> None:
    """Write an RGB (or gray) uint8 image atomically.  PNG compression 1: fast, lossless."""
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_PNG_COMPRESSION, compression] if str(path).endswith(".png") else []
    # Encoded in memory and written by Python: cv2.imwrite can report success for a file a
    # full disk cut short, which a later reader then finds unreadable.
    encoded, data = cv2.imencode(Path(path).suffix or ".png", bgr, params)
    if not encoded:
        raise OSError(f"{path}: could not encode image")
    with staged_file(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data.tobytes())


def save_array(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` atomically."""
    with staged_file(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def load_array(path: str | os.PathLike) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def write_json(path: str | os.PathLike, data) -> None:
    with staged_file(path) as tmp, open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def read_json(path: str | os.PathLike):
    with open(path) as handle:
        return json.load(handle)


def _files_under(root: Path) -> set[str]:
    found = set()
    for folder, _, files in os.walk(root):
        relative = Path(folder).relative_to(root)
        found.update((relative / name).as_posix() for name in files)
    found.discard(MANIFEST)
    return found


@contextlib.contextmanager
def staged_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Fill a fresh directory that appears at ``path`` only once the block succeeds.

    The directory gets a manifest of its files (see :func:`directory_is_complete`), and an
    older directory at ``path`` is moved aside before the new one takes its name, so at no
    moment does ``path`` hold a half-written or half-removed directory of ours.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(path.parent, f".{path.name}.*")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        with disk_full_reported(path):
            yield tmp
            (tmp / MANIFEST).write_text("".join(f"{name}\n" for name in sorted(_files_under(tmp))))
        os.chmod(tmp, 0o777 & ~_current_umask())
        aside = path.parent / f".{path.name}.{uuid.uuid4().hex}.old"
        if path.exists():
            os.replace(path, aside)
        os.replace(tmp, path)
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def directory_is_complete(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory :func:`staged_directory` finished and nothing has been
    removed from since (Snakemake deleting a temp() directory removes files one by one)."""
    manifest = Path(path) / MANIFEST
    try:
        listed = set(manifest.read_text().splitlines())
    except OSError:
        return False
    return listed <= _files_under(Path(path))


def remove_directories_made_redundant(parent: str | os.PathLike, made_from_them: str | os.PathLike) -> list[Path]:
    """Remove the directories in ``parent`` for which a complete directory of the same name
    exists in ``made_from_them``; return them.

    For temp() intermediates of a run that was killed before Snakemake deleted them: a rerun
    has no job left that reads them, so Snakemake would keep them (and their disk) forever.
    """
    parent, made_from_them = Path(parent), Path(made_from_them)
    removed = []
    if not parent.is_dir():
        return removed
    for child in sorted(parent.iterdir()):
        if child.is_dir() and not child.name.startswith(".") and directory_is_complete(made_from_them / child.name):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def remove_incomplete_directories(parent: str | os.PathLike) -> list[Path]:
    """Remove the directory outputs in ``parent`` that are not complete; return them.

    For regenerable intermediates only: a run killed while Snakemake deleted one of them leaves
    it half there, newer than the outputs made from it, and a rerun would otherwise read it.
    Staging folders (dot names) are left to their writers.
    """
    parent = Path(parent)
    removed = []
    if not parent.is_dir():
        return removed
    for child in sorted(parent.iterdir()):
        if child.is_dir() and not child.name.startswith(".") and not directory_is_complete(child):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


@contextlib.contextmanager
def job_log(path: str | os.PathLike) -> Iterator[None]:
    """Run a rule script's body with its logging going to ``path`` (the rule's ``log:``
    file), including the error that ends it: a failed job's log is where Snakemake (and a
    cluster user) looks first.

    A :class:`RestyleError` (bad input, disk full) leaves the block as its one line on
    stderr and exit status 1; the traceback goes to the log only.  Other errors are logged
    and propagate unchanged.
    """
    import logging

    logging.basicConfig(filename=str(path), level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        yield
    except Exception as error:
        logging.getLogger("restyle").error("%s: %s", type(error).__name__, error, exc_info=True)
        if isinstance(error, RestyleError):
            print(f"restyle: error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        raise


def read_frame(frames_dir: str | os.PathLike, index: int) -> np.ndarray:
    """Frame ``index`` of an extracted frame folder."""
    return read_image(Path(frames_dir) / frame_name(index))


class LazyMap(Sequence):
    """``[function(0), function(1), ...]`` as a read-only sequence, computed on access.

    Keeps the ``cache`` most recently used items: an algorithm that walks a clip with a
    bounded look-back (the deflicker's windows) then holds a few frames, not the clip, and
    computes each about once per walk.
    """

    def __init__(self, function: Callable[[int], np.ndarray], length: int, cache: int = 16):
        self.function, self.length = function, int(length)
        self.cache = max(1, int(cache))
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]
        if index in self._items:
            self._items.move_to_end(index)
        else:
            self._items[index] = self.function(index)
            while len(self._items) > self.cache:
                self._items.popitem(last=False)
        return self._items[index]


class LazyFrames(LazyMap):
    """Image files as a read-only sequence of frames, decoded on access (a :class:`LazyMap`
    of :func:`read_image`)."""

    def __init__(self, paths: Sequence[str | os.PathLike], cache: int = 16):
        self.paths = [Path(p) for p in paths]
        super().__init__(lambda i: read_image(self.paths[i]), len(self.paths), cache)
