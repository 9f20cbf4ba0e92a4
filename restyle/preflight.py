"""Checks run before any heavy work, each failure a one-line message naming file and fix.

The workflow calls these at parse time so that a wrong path, an unreadable video, a
painted keyframe of the wrong size or an invalid config value stops the run before a
single frame is decoded in earnest.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import yaml

from restyle.io import ImageError, free_mb, read_image_with_alpha
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


def warn(message: str) -> None:
    """A problem that does not stop the run, as one line on stderr."""
    print(f"restyle: warning: {message}", file=sys.stderr)


COMMAND_LINE = "--config"


def display_path(path: str | Path) -> str:
    """A config file's path as the user would write it: relative to the working directory
    when inside it."""
    path = Path(path)
    try:
        return str(path.absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def config_origin(key: str, sources: list[tuple[str, dict]]) -> str:
    """Where the value at dotted ``key`` came from: the last of ``sources`` (label, values),
    in the order Snakemake merges them, that sets it or the nearest section above it."""
    parts = key.split(".") if key else []
    best, best_depth = sources[0][0] if sources else "config.yaml", -1
    for label, values in sources:
        node, depth = values, 0
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                break
            node, depth = node[part], depth + 1
        if depth > 0 and depth >= best_depth:
            best, best_depth = label, depth
    return best


def fix_hint(origin: str) -> str:
    if origin == COMMAND_LINE:
        return "fix the --config value on the command line (nested keys: --config 'keyframes={interval: 5}')"
    return f"fix it in {origin}"


def load_schema(basedir: str | Path) -> dict:
    with open(Path(basedir) / "workflow" / "schemas" / "config.schema.yaml") as handle:
        return yaml.safe_load(handle)


def _schema_types(schema: dict) -> list[str]:
    kinds = schema.get("type", [])
    return [kinds] if isinstance(kinds, str) else list(kinds)


def _coerced(value, schema: dict):
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key in value:
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                value[key] = _coerced(value[key], sub)
        return value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_coerced(item, schema["items"]) for item in value]
    if isinstance(value, str) and "string" not in _schema_types(schema):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        python_types = {"integer": int, "number": (int, float), "boolean": bool, "null": type(None),
                        "array": list, "object": dict}
        for kind in _schema_types(schema):
            if isinstance(parsed, python_types.get(kind, ())) and not (kind != "boolean" and isinstance(parsed, bool)):
                return _coerced(parsed, schema)
    return value


def coerce_command_line(config: dict, command_line: dict, schema: dict) -> None:
    """Give ``--config`` values the types the schema asks for, in ``config`` (in place).

    Snakemake reads a nested ``--config key={a: 5}`` with YAML's base loader, so every value in
    it arrives as a string (``'5'``); a value written in a config file keeps its YAML type.
    """
    def walk(given: dict, target: dict, schema: dict) -> None:
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, value in given.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is None or key not in target:
                continue
            if isinstance(value, dict) and isinstance(target[key], dict):
                walk(value, target[key], sub)
            else:
                target[key] = _coerced(target[key], sub)

    walk(command_line, config, schema)


def _config_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


Origin = Callable[[str], str]


def _config_yaml(_key: str) -> str:
    return "config.yaml"


def fill_defaults(config: dict, schema: dict) -> dict:
    """Put the schema's ``default`` of every property that ``config`` leaves out into it (in
    place, also in sections that were themselves filled in) and return it.

    The schema is the one place defaults live: rules, scripts and checks read the filled
    config and never supply a fallback of their own.
    """
    properties = schema.get("properties", {})
    for key, sub in properties.items():
        if key not in config and "default" in sub:
            config[key] = copy.deepcopy(sub["default"])
        if isinstance(config.get(key), dict) and ("properties" in sub or "additionalProperties" in sub):
            fill_defaults(config[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):  # entries of a name -> settings mapping (deflicker_videos)
        for key, value in config.items():
            if key not in properties and isinstance(value, dict):
                fill_defaults(value, extra)
    return config


def schema_defaults(basedir: str | Path) -> dict:
    """Every default of the workflow's config schema, as a config (no videos)."""
    return fill_defaults({}, load_schema(basedir))


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "enum":
        # The schema's title names what the value is (a stylizer, a look, ...).
        what = error.schema.get("title", "value")
        return f"unknown {what} {error.instance!r}; use one of {', '.join(map(str, error.validator_value))}"
    return error.message


def check_config(config: dict, basedir: str | Path, origin: Origin = _config_yaml) -> PreflightErrors:
    """Validate the workflow config against its schema once, fill in the schema's defaults,
    then check what a schema cannot say (the model files, names of videos).

    ``origin(key)`` names the file (or ``--config``) a dotted key's value came from, so each
    message points where the fix goes.  ``config`` is filled in place only when it is valid.
    """
    errors = PreflightErrors()
    schema = load_schema(basedir)
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path)):
        where = origin(_config_path(error))
        errors.append(f"{where}: {_config_path(error)}: {_schema_message(error)} ({fix_hint(where)})")
    if errors:
        return errors
    fill_defaults(config, schema)
    stylizer = config["stylizer"]
    if stylizer["backend"] == "diffusion":
        errors.extend(check_diffusion_config(stylizer, origin("stylizer.model")))
    errors.extend(check_deflicker_config(config, origin("deflicker")))
    if config["propagation"]["method"] == "network":
        errors.extend(check_network_config(origin("propagation.method")))
    videos = set(config["videos"])
    if not videos and not config["deflicker_videos"]:
        errors.append(f"{origin('videos')}: videos: nothing to do; name a video to restyle under videos "
                      "(or one to deflicker under deflicker_videos)")
    for name in sorted(videos & set(config["deflicker_videos"])):
        errors.append(f"{origin(f'deflicker_videos.{name}')}: deflicker_videos.{name}: the name {name!r} is also "
                      "one of videos, and both would write results/" + name + "/; rename one of them")
    sections = (("keyframes.extra", config["keyframes"]["extra"]), ("stylizer.overrides", stylizer["overrides"]))
    for key, per_video in sections:
        for name in sorted(set(per_video) - videos):
            errors.append(f"{origin(f'{key}.{name}')}: {key}.{name}: there is no video {name!r} "
                          f"(videos: {', '.join(sorted(videos))}); fix the name or remove the entry")
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
        check_model_files(model, controlnet_path=stylizer["controlnet"], config=stylizer["config"])
    except DiffusionModelError as error:
        return [f"{error} (stylizer.model in {config_name})"]
    return []


class PaintedNameError(ValueError):
    """An image in a painted folder that is not named by a frame number."""


def painted_files(folder: str | Path) -> dict[int, Path]:
    """``{frame number: file}`` for the image files in ``folder``.

    Every image there must be named by its frame number (``10.png``, ``00010.png``): one named
    otherwise would silently be left out, so it raises :class:`PaintedNameError`.  Files of
    other kinds (notes, ``.DS_Store``) are ignored.
    """
    folder = Path(folder)
    found: dict[int, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in PAINTED_SUFFIXES and not path.name.startswith("."):
            if not re.fullmatch(r"\d+", path.stem):
                digits = re.findall(r"\d+", path.stem)
                rename = (f"rename it to {int(digits[-1])}{path.suffix} if it paints frame {int(digits[-1])}"
                          if digits else "rename it to its frame number (e.g. 10.png)")
                raise PaintedNameError(f"{path}: painted keyframes are named by frame number; {rename}, "
                                       f"or move it out of {folder}")
            frame = int(path.stem)
            if frame in found:
                raise ValueError(f"{path}: frame {frame} is painted twice (also {found[frame]}); keep one file")
            found[frame] = path
    return found


def check_video(name: str, path: str, config: dict, origin: Origin = _config_yaml) -> PreflightErrors:
    """The video opens and has frames; its painted keyframes are readable and fit it, and its
    extra keyframes lie inside it.

    On success the result's ``value`` is ``{"probe": ..., "size": (w, h), "painted": {...}}``.
    """
    errors = PreflightErrors()
    try:
        probe = probe_video(path, decode_errors=config["decode_errors"])
    except VideoError as error:
        errors.append(f"{error} (videos.{name} in {origin(f'videos.{name}')})")
        return errors
    last = probe["n_frames"] - 1
    per_frame = (("keyframes.extra", config["keyframes"]["extra"].get(name, [])),
                 ("stylizer.overrides", config["stylizer"]["overrides"].get(name, {})))
    for section, frames in per_frame:
        for frame in sorted(int(k) for k in frames):
            if frame > last:
                key = f"{section}.{name}"
                errors.append(f"{origin(key)}: {key}: frame {frame} is past the last frame ({last}) of {path}; "
                              f"use frames 0-{last}")
    if errors:
        return errors
    width, height = output_size(probe["width"], probe["height"], config["width"])
    folder = config["keyframes"]["painted_dir"].format(video=name)
    try:
        painted = painted_files(folder)
    except ValueError as error:
        errors.append(str(error))
        return errors
    for frame, painted_path in painted.items():
        try:
            image, alpha = read_image_with_alpha(painted_path)
        except ImageError as error:
            errors.append(str(error))
            continue
        if alpha is not None and alpha.min() < 255:
            errors.append(f"{painted_path}: painted keyframe has transparent pixels, and restyle uses a "
                          "painted keyframe as the whole frame; flatten it onto the frame "
                          "(or paint every pixel) and save it without alpha")
            continue
        if frame >= probe["n_frames"]:
            errors.append(f"{painted_path}: frame {frame} is past the last frame "
                          f"({probe['n_frames'] - 1}) of {path}; rename or remove it")
            continue
        if image.shape[1] != width or image.shape[0] != height:
            errors.append(f"{painted_path}: painted keyframe is {image.shape[1]}x{image.shape[0]} but the "
                          f"frames of {name} are {width}x{height}; resize it to {width}x{height}")
    errors.value = {"probe": probe, "size": (width, height),
                    "painted": {frame: str(p) for frame, p in painted.items()}}
    return errors


def remap_settings(config: dict) -> dict:
    """The arguments of :class:`restyle.deflicker.RemapSettings` in a (filled) config: the
    deflicker section's matching options, with flow.preset."""
    keys = ("guide_weight", "style_weight", "patch_size", "patchmatch_iters", "search_radius", "error_scale", "detail_gain", "seed")
    return {**{k: config["deflicker"][k] for k in keys}, "flow_preset": config["flow"]["preset"]}


def network_settings(config: dict) -> dict:
    """The arguments of :class:`restyle.network.NetworkSettings` in a (filled) config: the
    network section, with flow.preset."""
    rendering = ("keyframes",)  # how the frames are rendered, not how the network is trained
    network = {k: v for k, v in config["network"].items() if k not in rendering}
    return {**network, "flow_preset": config["flow"]["preset"]}


def check_network_config(config_name: str = "config.yaml") -> list[str]:
    """propagation.method network needs PyTorch and safetensors (the ``network`` extra)."""
    missing = [name for name in ("torch", "safetensors") if importlib.util.find_spec(name) is None]
    if missing:
        return [f"{config_name}: propagation.method: network needs {', '.join(missing)}: "
                "pip install -e '.[network]'"]
    return []


def check_deflicker_config(config: dict, origin: str = "config.yaml") -> list[str]:
    """What the schema cannot say of the deflicker section (an odd patch size), in the
    library's own words (:class:`restyle.deflicker.RemapSettings`)."""
    from restyle.deflicker import RemapSettings

    try:
        RemapSettings(**remap_settings(config))
    except ValueError as error:
        return [f"{origin}: {error} ({fix_hint(origin)})"]
    return []


def check_deflicker_video(name: str, entry: dict, config: dict, origin: Origin = _config_yaml) -> PreflightErrors:
    """A video to deflicker (``deflicker_videos.<name>``) opens, and its guide, when it has
    one, has the same frame count and frame size.

    On success the result's ``value`` is like :func:`check_video`'s (no painted keyframes),
    plus ``"guide_probe"`` (None without a guide).
    """
    errors = PreflightErrors()
    probes = {}
    for role in ("video", "guide"):
        path = entry[role]
        if path is None:
            probes[role] = None
            continue
        try:
            probes[role] = probe_video(path, decode_errors=config["decode_errors"])
        except VideoError as error:
            key = f"deflicker_videos.{name}.{role}"
            errors.append(f"{error} ({key} in {origin(key)})")
    if errors:
        return errors
    probe, guide = probes["video"], probes["guide"]
    size = output_size(probe["width"], probe["height"], config["width"])
    if guide is not None:
        video_path, guide_path = entry["video"], entry["guide"]
        fix = (f"give as guide the video {video_path} was made from, frame for frame "
               f"(deflicker_videos.{name}.guide in {origin(f'deflicker_videos.{name}.guide')}), or remove the guide "
               "to deflicker blind")
        if guide["n_frames"] != probe["n_frames"]:
            errors.append(f"{guide_path}: the guide has {guide['n_frames']} frames but {video_path} has "
                          f"{probe['n_frames']}; {fix}")
        elif (guide["width"], guide["height"]) != (probe["width"], probe["height"]):
            errors.append(f"{guide_path}: the guide is {guide['width']}x{guide['height']} but {video_path} is "
                          f"{probe['width']}x{probe['height']}; {fix}")
    errors.value = {"probe": probe, "size": size, "painted": {}, "guide_probe": guide}
    return errors


# Environment variable through which the workflow hands the checked video facts
# (:func:`check_video`'s values) to the jobs it starts, which parse the workflow again.
VIDEO_INFO_ENV = "RESTYLE_VIDEO_INFO"


def encode_video_info(infos: dict[str, dict]) -> str:
    """``{video: check_video value}`` as one JSON line (for :data:`VIDEO_INFO_ENV`)."""
    return json.dumps(infos, sort_keys=True, separators=(",", ":"))


def decode_video_info(text: str) -> dict[str, dict]:
    """The inverse of :func:`encode_video_info` (frame numbers back to ints, size a tuple)."""
    infos = json.loads(text)
    for info in infos.values():
        info["size"] = tuple(info["size"])
        info["painted"] = {int(frame): path for frame, path in info["painted"].items()}
    return infos


def stray_painted_folders(painted_dir: str, videos: list[str]) -> list[str]:
    """Warnings for folders beside the painted folders of ``videos`` that belong to no video
    (a misspelt video name would otherwise leave its paintings unused)."""
    if "{video}" not in painted_dir:
        return []
    pattern = Path(painted_dir)
    parts = pattern.parts
    at = next(i for i, part in enumerate(parts) if "{video}" in part)
    if "{video}" != parts[at] or at != len(parts) - 1:
        return []
    parent = Path(*parts[:at]) if at else Path(".")
    if not parent.is_dir():
        return []
    known = set(videos)
    warnings = []
    for folder in sorted(parent.iterdir()):
        if folder.is_dir() and folder.name not in known and not folder.name.startswith(".") and \
                any(p.suffix.lower() in PAINTED_SUFFIXES for p in folder.iterdir()):
            warnings.append(f"{folder}: painted keyframes for a video {folder.name!r} that is not in "
                            f"videos ({', '.join(sorted(known))}); they are not used")
    return warnings


# Disk a run needs, in bytes per pixel of one frame (measured on the demo and on 1080p clips,
# BENCHMARKS.md "Disk"): files that stay (frames, blended frames, keyframes, videos), and the
# temp() intermediates of one gap in flight (flows, occlusions, guides, passes).
KEPT_BYTES_PER_PIXEL = 6
INTERMEDIATE_BYTES_PER_PIXEL = 46


def disk_needed_mb(video_infos: dict[str, dict], interval: int, keep_intermediate: bool, cores: int) -> float:
    """Disk the run needs at its peak, in MB: every video's kept files plus, with temp()
    intermediates, about one gap (``interval`` + 1 frames) per core in flight (all
    intermediates with ``keep_intermediate``)."""
    total = 0.0
    for info in video_infos.values():
        width, height = info["size"]
        frames = info["probe"]["n_frames"]
        in_flight = frames if keep_intermediate else min(frames, (interval + 1) * max(cores, 1))
        total += width * height * (frames * KEPT_BYTES_PER_PIXEL + in_flight * INTERMEDIATE_BYTES_PER_PIXEL)
    return total / 1e6


def _size_mb(folder: Path) -> float:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            pass
    return total / 1e6


def check_disk_space(results: str | Path, needed_mb: float, origin: str = "config.yaml") -> tuple[list[str], list[str], float]:
    """(errors, warnings, MB still needed) for a run needing ``needed_mb`` under ``results``.

    What the results folder already holds counts as done (a rerun needs only the rest); the
    estimate is generous, so a shortfall within it is a warning and only a run needing more
    than twice the free space is refused.
    """
    results = Path(results)
    existing = _size_mb(results) if results.is_dir() else 0.0
    remaining = max(0.0, needed_mb - existing)
    free = free_mb(results)
    hint = ("free some space, or put results/ on a larger disk (a symlink works); "
            f"check_disk_space: false in {origin} skips this check")
    if remaining > 2 * free:
        return [f"{results}: not enough disk space: this run needs about {remaining:,.0f} MB more and "
                f"{free:,.0f} MB are free; {hint}"], [], remaining
    if remaining > free:
        return [], [f"{results}: this run may need about {remaining:,.0f} MB more and only "
                    f"{free:,.0f} MB are free; it stops with 'disk full' if so ({hint})"], remaining
    return [], [], remaining


def check_painted_are_keyframes(painted: dict[int, str], keyframes: list[int], video: str,
                                config_name: str = "config.yaml") -> PreflightErrors:
    """Every painted file must sit on a keyframe, or it would silently be ignored."""
    errors = PreflightErrors()
    keys = set(keyframes)
    for frame, path in sorted(painted.items()):
        if frame not in keys:
            nearby = sorted(keys, key=lambda k: abs(k - frame))[:2]
            errors.append(f"{path}: frame {frame} is not a keyframe of {video}; add it with "
                          f"keyframes.extra: {{{video}: [{frame}]}} in {config_name}, or paint "
                          f"keyframe {' or '.join(str(k) for k in sorted(nearby))} instead")
    return errors
