"""Checks run before any heavy work, each failure a one-line message naming file and fix.

The workflow calls these at parse time so that a wrong path, an unreadable video, a
painted keyframe of the wrong size or an invalid config value stops the run before a
single frame is decoded in earnest.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import jsonschema
import yaml

from restyle.io import ImageError, read_image
from restyle.stylize import BACKENDS, LOOKS
from restyle.video import VideoError, output_size, probe_video

PAINTED_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


class PreflightErrors(list):
    """Messages of failed checks plus, when all pass, the checked value."""

    value = None


def fail_on_errors(result):
    """Exit with the first error message (one line, no traceback), else return the value."""
    if isinstance(result, PreflightErrors):
        if result:
            sys.exit(f"restyle: error: {result[0]}")
        return result.value
    return result


def _config_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def check_config(config: dict, basedir: str | Path, config_name: str = "config.yaml") -> PreflightErrors:
    """Schema and semantic checks of the workflow config."""
    errors = PreflightErrors()
    schema_path = Path(basedir) / "workflow" / "schemas" / "config.schema.yaml"
    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path)):
        errors.append(f"{config_name}: {_config_path(error)}: {error.message} "
                      f"(fix it in {config_name} or on the command line with --config)")
    if errors:
        return errors
    stylizer = config.get("stylizer", {})
    backend = stylizer.get("backend", "builtin")
    if backend not in BACKENDS:
        errors.append(f"{config_name}: stylizer.backend: unknown stylizer {backend!r}; "
                      f"use one of {sorted(BACKENDS)}")
    elif backend == "builtin" and stylizer.get("look", "watercolor") not in LOOKS:
        errors.append(f"{config_name}: stylizer.look: unknown built-in look {stylizer.get('look')!r}; "
                      f"use one of {sorted(LOOKS)}")
    elif backend == "diffusion":
        errors.extend(check_diffusion_config(stylizer, config_name))
    return errors


def check_diffusion_config(stylizer: dict, config_name: str = "config.yaml") -> list[str]:
    """The model files exist and look loadable, and PyTorch + diffusers are installed.

    Only file checks: no weights are loaded, so this is cheap enough for parse time.
    """
    missing = [name for name in ("torch", "diffusers", "transformers") if importlib.util.find_spec(name) is None]
    if missing:
        return [f"{config_name}: stylizer.backend: diffusion needs {', '.join(missing)}: "
                "pip install -e '.[diffusion]'"]
    model = stylizer.get("model")
    if not model:
        return [f"{config_name}: stylizer.model: the diffusion stylizer needs a local model "
                "(a diffusers directory or a .safetensors file; restyle never downloads one)"]
    from restyle.diffusion.loading import DiffusionModelError, check_model_files

    try:
        check_model_files(model, controlnet_path=stylizer.get("controlnet"), config=stylizer.get("config"))
    except DiffusionModelError as error:
        return [f"{error} (stylizer.model in {config_name})"]
    return []


def painted_files(folder: str | Path) -> dict[int, Path]:
    """``{frame number: file}`` for image files in ``folder`` whose stem is a frame number."""
    folder = Path(folder)
    found: dict[int, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in PAINTED_SUFFIXES and re.fullmatch(r"\d+", path.stem):
            frame = int(path.stem)
            if frame in found:
                raise ValueError(f"{path}: frame {frame} is painted twice (also {found[frame]}); keep one file")
            found[frame] = path
    return found


def check_video(name: str, path: str, config: dict) -> PreflightErrors:
    """The video opens and has frames; its painted keyframes are readable and fit it.

    On success the result's ``value`` is ``{"probe": ..., "size": (w, h), "painted": {...}}``.
    """
    errors = PreflightErrors()
    try:
        probe = probe_video(path)
    except VideoError as error:
        errors.append(f"{error} (videos.{name} in config.yaml)")
        return errors
    width, height = output_size(probe["width"], probe["height"], config.get("width"))
    folder = str(config.get("keyframes", {}).get("painted_dir", "painted/{video}")).format(video=name)
    try:
        painted = painted_files(folder)
    except ValueError as error:
        errors.append(str(error))
        return errors
    for frame, painted_path in painted.items():
        if frame >= probe["n_frames"]:
            errors.append(f"{painted_path}: frame {frame} is past the last frame "
                          f"({probe['n_frames'] - 1}) of {path}; rename or remove it")
            continue
        try:
            image = read_image(painted_path)
        except ImageError as error:
            errors.append(str(error))
            continue
        if image.shape[1] != width or image.shape[0] != height:
            errors.append(f"{painted_path}: painted keyframe is {image.shape[1]}x{image.shape[0]} but the "
                          f"frames of {name} are {width}x{height}; resize it to {width}x{height}")
    errors.value = {"probe": probe, "size": (width, height),
                    "painted": {frame: str(p) for frame, p in painted.items()}}
    return errors


def check_painted_are_keyframes(painted: dict[int, str], keyframes: list[int], video: str) -> PreflightErrors:
    """Every painted file must sit on a keyframe, or it would silently be ignored."""
    errors = PreflightErrors()
    keys = set(keyframes)
    for frame, path in sorted(painted.items()):
        if frame not in keys:
            nearby = sorted(keys, key=lambda k: abs(k - frame))[:2]
            errors.append(f"{path}: frame {frame} is not a keyframe of {video}; add it with "
                          f"keyframes.extra: {{{video}: [{frame}]}} in config.yaml, or paint "
                          f"keyframe {' or '.join(str(k) for k in sorted(nearby))} instead")
    return errors
