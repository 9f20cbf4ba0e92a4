# Input functions and path helpers shared by every stage.  Checks that can fail on bad
# input run here, at parse time, so a wrong path or a mis-sized painted keyframe is
# reported in one line before any heavy job starts.
import math
import os
import sys
from pathlib import Path

from snakemake.common.configfile import load_configfile

# The restyle library of this checkout, also when it is not pip-installed.
sys.path.insert(0, workflow.basedir)
from restyle import evaluate, io, keyframes, preflight, stylize
from restyle.snakemake_output import one_line_per_job

# The terminal shows one line per finished job (.snakemake/log/ keeps the job blocks).
one_line_per_job(workflow)

# Rule scripts import the restyle library from this checkout, in whatever environment
# (a conda env from envs/, a cluster node) they run.
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (workflow.basedir, os.environ.get("PYTHONPATH")) if p)
)

# Where each config value came from, in Snakemake's merge order (the Snakefile's
# config.yaml, then --configfile files, then --config), so a message names the right file.
CLI_CONFIG = dict(workflow.config_settings.config)
CONFIG_SOURCES = [
    (preflight.display_path(f), load_configfile(f))
    for f in workflow.configfiles
    if Path(f).absolute() not in set(map(Path, workflow.overwrite_configfiles))
] + [(preflight.display_path(f), load_configfile(f)) for f in workflow.overwrite_configfiles]
if CLI_CONFIG:
    CONFIG_SOURCES.append((preflight.COMMAND_LINE, CLI_CONFIG))


def config_origin(key):
    return preflight.config_origin(key, CONFIG_SOURCES)


# The one validation: one line per problem instead of a schema dump, then the schema's
# defaults are filled in (no rule or script supplies a default of its own).
preflight.coerce_command_line(config, CLI_CONFIG, preflight.load_schema(workflow.basedir))
preflight.fail_on_errors(preflight.check_config(config, workflow.basedir, config_origin))
if workflow.is_main_process or preflight.VIDEO_INFO_ENV not in os.environ:
    VIDEO_INFO = {
        name: preflight.fail_on_errors(preflight.check_video(name, path, config, config_origin))
        for name, path in config["videos"].items()
    }
    # Jobs parse this file again (a cluster job, for one): they get the probes from here.
    os.environ[preflight.VIDEO_INFO_ENV] = preflight.encode_video_info(VIDEO_INFO)
else:
    VIDEO_INFO = preflight.decode_video_info(os.environ[preflight.VIDEO_INFO_ENV])


def remove_leftover_intermediates():
    """Remove temp() folders of gaps that are done with them (guides and passes once the gap
    is blended, flows once it is measured too): a killed run left them, and Snakemake
    deletes a temp() output only after a job that reads it has run in the same run.  Called
    before a run plans its jobs and when it succeeds."""
    if config["keep_intermediate"]:
        return
    for name in config["videos"]:
        for stage, last_output in (("flow", "measured"), ("guides", "blended"), ("passes", "blended")):
            io.remove_directories_made_redundant(
                Path("results", name, stage), Path("results", name, last_output)
            )


if workflow.is_main_process:
    for name, info in VIDEO_INFO.items():
        # A plan from an earlier run tells, before any job starts, whether a newly painted
        # file sits on a keyframe; on a first run plan_keyframes checks it.
        plan_file = Path("results", name, "keyframes.json")
        if info["painted"] and plan_file.exists():
            planned = io.read_json(plan_file)
            if planned["interval"] == config["keyframes"]["interval"]:
                preflight.fail_on_errors(
                    preflight.check_painted_are_keyframes(
                        info["painted"],
                        planned["keyframes"] + config["keyframes"]["extra"].get(name, []),
                        name,
                        config_origin("keyframes.extra"),
                    )
                )
    for warning in preflight.stray_painted_folders(
        config["keyframes"]["painted_dir"], list(config["videos"])
    ):
        preflight.warn(warning)
    # A run killed while Snakemake deleted a temp() folder leaves it half there (and newer
    # than what was made from it): such a folder must go before the DAG is built on it.
    for name in config["videos"]:
        for stage in ("flow", "guides", "passes"):
            io.remove_incomplete_directories(Path("results", name, stage))
    if not workflow.output_settings.dryrun:
        remove_leftover_intermediates()
    errors, warnings, needed_mb = preflight.check_disk_space(
        "results",
        preflight.disk_needed_mb(
            VIDEO_INFO,
            config["keyframes"]["interval"],
            config["keep_intermediate"],
            workflow.resource_settings.cores or 1,
        ),
        config_origin("check_disk_space"),
    )
    if config["check_disk_space"]:
        preflight.fail_on_errors(preflight.PreflightErrors(errors))
        for warning in warnings:
            preflight.warn(warning)
    os.environ[io.DISK_NEEDED_ENV] = f"{needed_mb:.0f}"


wildcard_constraints:
    video="[A-Za-z0-9_.-]+",
    gap=r"\d{5}-\d{5}",
    frame=r"\d{5}",
    scene=r"\d{5}",


def results(*parts):
    return str(Path("results", *parts))


def keep(path):
    """Intermediates are temp() unless the user asked to keep them."""
    return path if config["keep_intermediate"] else temp(path)


def painted_keyframes(video):
    """{frame number: path} of the hand-painted keyframes of ``video`` (validated)."""
    return VIDEO_INFO[video]["painted"]


def painted_dir(video):
    return config["keyframes"]["painted_dir"].format(video=video)


_PLANS = {}


def keyframe_plan(wildcards):
    """The keyframe plan, available once the plan_keyframes checkpoint has run (read once per
    version of the file: input functions ask for it thousands of times on a long clip)."""
    path = Path(checkpoints.plan_keyframes.get(video=wildcards.video).output[0])
    version = (str(path), path.stat().st_mtime_ns)
    if version not in _PLANS:
        plan = io.read_json(path)
        batch = config["cluster"]["gaps_per_job"]
        plan["gap_batch"] = {g["name"]: i // batch for i, g in enumerate(plan["gaps"])}
        plan["keyframe_batches"] = {}
        for gap in plan["gaps"]:
            for end in (gap["start"], gap["end"]):
                plan["keyframe_batches"].setdefault(end, set()).add(plan["gap_batch"][gap["name"]])
        _PLANS[version] = plan
    return _PLANS[version]


def painted_input(wildcards):
    """The painted file for this keyframe, if the user made one (adding it reruns the job)."""
    path = painted_keyframes(wildcards.video).get(int(wildcards.frame))
    return [path] if path else []


def styled_keyframe(video, frame):
    return results(video, "styled_keyframes", f"{int(frame):05d}.png")


DIFFUSION = config["stylizer"]["backend"] == "diffusion"
# DiffSynth's latent deflickering couples a scene's keyframes: they are stylized together.
DEFLICKER_KEYS = ("deflicker_steps", "deflicker_weight", "deflicker_radius")
SCENE_BATCHES = DIFFUSION and bool(config["stylizer"]["deflicker_steps"])


def stylizer_options():
    """The stylizer's options from the config, without backend name and overrides."""
    if not DIFFUSION:
        return {"look": config["stylizer"]["look"]}
    skipped = ("backend", "overrides", "look", *DEFLICKER_KEYS)
    return {k: v for k, v in config["stylizer"].items() if k not in skipped}


def video_overrides(wildcards):
    """All keyframe overrides of this video, keyed by frame number."""
    return {int(k): v for k, v in config["stylizer"]["overrides"].get(wildcards.video, {}).items()}


def scene_start(wildcards):
    """First frame of the scene holding keyframe ``wildcards.frame``."""
    return keyframes.scene_keyframes(keyframe_plan(wildcards), int(wildcards.frame))[0]


def keyframe_override(wildcards):
    """This keyframe's diffusion override ({prompt, strength, seed, ...}) or None."""
    return video_overrides(wildcards).get(int(wildcards.frame))


def attention_references(wildcards):
    """Records a keyframe attends to: its scene's first and previous keyframes (none for the
    first one, or without cross-frame attention)."""
    if not config["stylizer"]["cross_frame_attention"]:
        return []
    frame = int(wildcards.frame)
    scene_keys = keyframes.scene_keyframes(keyframe_plan(wildcards), frame)
    return [
        results(wildcards.video, "diffusion", f"{k:05d}.safetensors")
        for k in keyframes.reference_keyframes(scene_keys, frame)
    ]


def keyframe_styling(wildcards):
    """How this keyframe is styled (restyle.stylize.keyframe_source): painted, stylizer,
    scene_batch, base_record or override."""
    return stylize.keyframe_source(
        config["stylizer"]["backend"],
        int(wildcards.frame) in painted_keyframes(wildcards.video),
        SCENE_BATCHES,
        keyframe_override(wildcards),
    )


def diffusion_inputs(wildcards):
    """What stylize_keyframe needs of the diffusion stage (nothing when painted, or for the
    builtin backend)."""
    source = keyframe_styling(wildcards)
    if source == stylize.SCENE_BATCH:
        return [results(wildcards.video, "diffusion_scenes", f"{scene_start(wildcards):05d}")]
    if source == stylize.BASE_RECORD:
        return [results(wildcards.video, "diffusion", f"{wildcards.frame}.png")]
    if source == stylize.OVERRIDE:
        return attention_references(wildcards)
    return []


def gap_keyframes(wildcards):
    start, end = keyframes.parse_gap_name(wildcards.gap)
    return {"left": styled_keyframe(wildcards.video, start), "right": styled_keyframe(wildcards.video, end)}


def assembled_inputs(wildcards):
    """Everything the final video is assembled from: styled keyframes and blended gaps."""
    plan = keyframe_plan(wildcards)
    return {
        "keyframes": [styled_keyframe(wildcards.video, k) for k in plan["keyframes"]],
        "gaps": [results(wildcards.video, "blended", g["name"]) for g in plan["gaps"]],
    }


def gap_measurements(wildcards):
    """Every gap's share of metrics.json (measure_gap)."""
    return [results(wildcards.video, "measured", g["name"]) for g in keyframe_plan(wildcards)["gaps"]]


def final_outputs():
    outputs = []
    for video in config["videos"]:
        outputs.append(results(video, "restyled.mp4"))
        outputs.append(results(video, "metrics.json"))
        if config["output"]["compare"]:
            outputs.append(results(video, "compare.mp4"))
    return outputs


# Cluster submission.  Consecutive gaps of the plan are batched into group jobs together
# with the keyframes between them; sharing those keyframes is what makes a batch one
# connected group (Snakemake groups never span disconnected jobs).  A keyframe on the border
# of two batches stays outside both and runs on its own first, so batches never wait for
# each other.  (Explicit batches rather than --group-components, which in Snakemake 9 keeps
# merging already merged groups each time the DAG is updated.)
def gap_group(wildcards):
    plan = keyframe_plan(wildcards)
    return f"gaps-{wildcards.video}-{plan['gap_batch'][wildcards.gap]}"


def keyframe_group(wildcards):
    if keyframe_styling(wildcards) == stylize.OVERRIDE:
        return None  # a GPU job: batched, several would add up their GPUs in one request
    batches = keyframe_plan(wildcards)["keyframe_batches"].get(int(wildcards.frame), set())
    return f"gaps-{wildcards.video}-{next(iter(batches))}" if len(batches) == 1 else None


def frame_mem_mb(video, per_frame):
    """Memory for a job holding about ``per_frame`` bytes per pixel of working arrays."""
    width, height = VIDEO_INFO[video]["size"]
    return 300 + (width * height * per_frame) // 1_000_000


def video_frames(video):
    return VIDEO_INFO[video]["probe"]["n_frames"]


def gap_frames(gap):
    start, end = keyframes.parse_gap_name(gap)
    return end - start + 1


def output_mb(video, n_frames, bytes_per_pixel):
    """Disk a job's outputs take (``disk_mb``), from the bytes per pixel and frame measured in
    BENCHMARKS.md.  Declared so Snakemake need not size each job's input (the whole frame
    folder) to guess it."""
    width, height = VIDEO_INFO[video]["size"]
    return max(10, math.ceil(n_frames * width * height * bytes_per_pixel / 1e6))


def runtime_min(video, n_frames, seconds_per_megapixel):
    """Minutes of wall time to ask a cluster for: a job doing ``seconds_per_megapixel`` of work
    per frame-megapixel (measured on one core of the 2-core reference machine, BENCHMARKS.md),
    with a 3x margin for slower nodes and a 10-minute floor for start-up and queue jitter."""
    width, height = VIDEO_INFO[video]["size"]
    seconds = n_frames * width * height / 1e6 * seconds_per_megapixel
    return max(10, math.ceil(3 * seconds / 60))
