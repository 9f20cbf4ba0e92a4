"""File helpers for the workflow: images in RGB, arrays, JSON, all written atomically.

A job that is killed half-way must never leave a file that a rerun would trust, so every
writer here writes to a temporary name in the same directory and renames it into place
(``os.replace`` is atomic on POSIX).  Directory outputs are staged the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np


class ImageError(ValueError):
    """An image file that cannot be used; the message names the file and the fix."""


def frame_name(index: int, suffix: str = ".png") -> str:
    return f"{index:05d}{suffix}"


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as uint8 RGB (alpha dropped, gray expanded, 16-bit scaled)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError(f"{path}: cannot read this image; save it as PNG, JPEG or TIFF")
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ImageError(f"{path}: unsupported pixel type {image.dtype}; save it as 8-bit PNG")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


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


@contextlib.contextmanager
def _staged_file(path: str | os.PathLike) -> Iterator[str]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(path.parent, f".{path.stem}.*{path.suffix}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
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
    with _staged_file(path) as tmp:
        params = [cv2.IMWRITE_PNG_COMPRESSION, compression] if str(path).endswith(".png") else []
        if not cv2.imwrite(tmp, bgr, params):
            raise OSError(f"{path}: could not write image")


def save_array(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` atomically."""
    with _staged_file(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def load_array(path: str | os.PathLike) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def write_json(path: str | os.PathLike, data) -> None:
    with _staged_file(path) as tmp, open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def read_json(path: str | os.PathLike):
    with open(path) as handle:
        return json.load(handle)


@contextlib.contextmanager
def staged_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Fill a fresh directory that appears at ``path`` only once the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(path.parent, f".{path.name}.*")
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_current_umask())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def log_to(path: str | os.PathLike) -> None:
    """Send this process's logging to ``path`` (a rule's ``log:`` file), including the error
    that ends it: a failed job's log is where Snakemake (and a cluster user) looks first."""
    import logging
    import sys

    logging.basicConfig(filename=str(path), level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(message)s")
    previous_hook = sys.excepthook

    def log_uncaught(kind, error, traceback):
        logging.getLogger("restyle").error("%s: %s", kind.__name__, error, exc_info=(kind, error, traceback))
        previous_hook(kind, error, traceback)

    sys.excepthook = log_uncaught


def read_frame(frames_dir: str | os.PathLike, index: int) -> np.ndarray:
    """Frame ``index`` of an extracted frame folder."""
    return read_image(Path(frames_dir) / frame_name(index))
