# Input functions and path helpers shared by every stage.  Checks that can fail on bad
# input run here, at parse time, so a wrong path or a mis-sized painted keyframe is
# reported in one line before any heavy job starts.
import math
import os
import sys
from argparse import Namespace
from pathlib import Path

from snakemake.common.configfile import load_configfile

# The restyle library of this checkout, also when it is not pip-installed.
sys.path.insert(0, workflow.basedir)
from restyle import assemble, chunks, evaluate, io, keyframes, preflight, stylize
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
# per_frame: every frame stylized, then deflickered; otherwise keyframes and gaps, and the
# deflicker stage after blend_gap when deflicker.method asks for it.
PER_FRAME = config["propagation"]["method"] == "per_frame"
# network: keyframes as usual, then a network trained per scene renders every frame, chunk by chunk.
NETWORK = config["propagation"]["method"] == "network"
DEFLICKER_RESTYLED = PER_FRAME or config["deflicker"]["method"] != "none"
if workflow.is_main_process or preflight.VIDEO_INFO_ENV not in os.environ:
    VIDEO_INFO = {
        name: preflight.fail_on_errors(preflight.check_video(name, path, config, config_origin))
        for name, path in config["videos"].items()
    }
    # Videos made elsewhere, only to be deflickered (and their guides: same length and size).
    VIDEO_INFO.update(
        {
            name: preflight.fail_on_errors(
                preflight.check_deflicker_video(name, entry, config, config_origin)
            )
            for name, entry in config["deflicker_videos"].items()
        }
    )
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
    # With the deflicker stage, gaps are measured after it (measure_chunk), not through their flows.
    flow_done = "blended" if DEFLICKER_RESTYLED else "measured"
    for name in config["videos"]:
        for stage, last_output in (("flow", flow_done), ("guides", "blended"), ("passes", "blended")):
            io.remove_directories_made_redundant(
                Path("results", name, stage), Path("results", name, last_output)
            )


if workflow.is_main_process:
    for name, info in VIDEO_INFO.items():
        # A plan from an earlier run tells, before any job starts, whether a newly painted
        # file sits on a keyframe; on a first run plan_keyframes checks it.
        plan_file = Path("results", name, "keyframes.json")
        if info["painted"] and plan_file.exists() and not PER_FRAME:
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
    chunk=r"\d{5}-\d{5}",


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
    """Every gap's share of metrics.json (measure_gap; none when the final frames are made
    chunk by chunk, whose chunks are measured instead)."""
    if by_chunks(wildcards.video):
        return []
    return [results(wildcards.video, "measured", g["name"]) for g in keyframe_plan(wildcards)["gaps"]]


def final_outputs():
    outputs = []
    for video in [*config["videos"], *config["deflicker_videos"]]:
        outputs.append(results(video, final_video_name(video)))
        outputs.append(results(video, "metrics.json"))
        # Always planned, even when no job reads it: a checkpoint nobody has run leaves the jobs
        # behind it unknown, and a finished video would then not be redone when a changed
        # config makes it from chunks (deflicker, per_frame, network) instead of gaps.
        outputs.append(results(video, "chunks.json"))
        if config["output"]["compare"]:
            outputs.append(results(video, "compare.mp4"))
    return outputs


# Deflickering: of the restyled output (deflicker.method, or propagation.method per_frame), and
# of the videos under deflicker_videos, chunk by chunk (restyle.chunks).
def is_deflicker_video(video):
    return video in config["deflicker_videos"]


def deflickers(video):
    """Whether the final frames of ``video`` are those of deflicker_chunk."""
    return is_deflicker_video(video) or DEFLICKER_RESTYLED


def by_chunks(video):
    """Whether the final frames of ``video`` are made (and measured) chunk by chunk: by
    deflicker_chunk, or by network_chunk without the deflicker stage."""
    return deflickers(video) or NETWORK


def final_chunk_dir(video):
    """The folder of the final frames' chunks (see :func:`by_chunks`)."""
    return "deflickered" if deflickers(video) else "network_frames"


def has_guide(video):
    return is_deflicker_video(video) and config["deflicker_videos"][video]["guide"] is not None


def is_blind(video):
    return is_deflicker_video(video) and not has_guide(video)


def final_video_name(video):
    return "deflickered.mp4" if is_deflicker_video(video) else "restyled.mp4"


def source_video(wildcards):
    """The video file behind ``wildcards.video`` (restyled or deflickered)."""
    if is_deflicker_video(wildcards.video):
        return config["deflicker_videos"][wildcards.video]["video"]
    return config["videos"][wildcards.video]


def guide_video(wildcards):
    return config["deflicker_videos"][wildcards.video]["guide"]


def guide_frames(video):
    """The frames a deflicker of ``video`` matches on: the input frames of a restyled video,
    a deflicker video's guide, or none (blind)."""
    if is_deflicker_video(video):
        return [results(video, "guide", "frames")] if has_guide(video) else []
    return [results(video, "frames")]


def scene_source(wildcards):
    """What scenes are detected on: the guide when there is one, else the frames."""
    if has_guide(wildcards.video):
        return {
            "frames": results(wildcards.video, "guide", "frames"),
            "meta": results(wildcards.video, "guide", "meta.json"),
        }
    return {"frames": results(wildcards.video, "frames"), "meta": results(wildcards.video, "meta.json")}


_CHUNK_PLANS = {}


def chunk_plan(video):
    """chunks.json of ``video`` (the plan_chunks checkpoint), read once per version."""
    path = Path(checkpoints.plan_chunks.get(video=video).output[0])
    version = (str(path), path.stat().st_mtime_ns)
    if version not in _CHUNK_PLANS:
        plan = io.read_json(path)
        plan["frame_chunk"] = chunks.chunk_of_frame(plan)
        if "gaps" in plan:
            plan["frame_sources"] = keyframes.frame_sources(plan)
        _CHUNK_PLANS[version] = plan
    return _CHUNK_PLANS[version]


def chunk_plan_input(wildcards):
    """A restyled video's chunks are planned from its keyframe plan (whose keyframes and gaps
    they keep, so a chunk's inputs depend on this one checkpoint), others from their scenes."""
    if is_deflicker_video(wildcards.video) or PER_FRAME:
        return {"scenes": results(wildcards.video, "scenes.json")}
    return {"plan": results(wildcards.video, "keyframes.json")}


def this_chunk(wildcards):
    return chunks.find_chunk(chunk_plan(wildcards.video), wildcards.chunk)


def remap_settings():
    """restyle.deflicker.RemapSettings of the config."""
    return preflight.remap_settings(config)


def deflicker_window(video):
    """Frames blended each side of a frame of ``video`` (what a deflicker chunk reads): the
    local refinement's when blind, the per-frame window for per-frame stylization and videos
    made elsewhere (they flicker every frame), else the restyled output's."""
    if is_blind(video):
        return config["deflicker"]["blind"]["refine_window"]
    if PER_FRAME or is_deflicker_video(video):
        return config["deflicker"]["per_frame_window"]
    return config["deflicker"]["window"]


def chunk_context(wildcards):
    return chunks.context(
        chunk_plan(wildcards.video), this_chunk(wildcards), deflicker_window(wildcards.video)
    )


def processed_frame_paths(video, start, end):
    """Path of each frame ``start..end - 1`` of ``video`` before deflickering: its extracted
    frames (deflicker_videos), its per-frame stylization, or its styled keyframes and blends."""
    if is_deflicker_video(video):
        return [results(video, "frames", io.frame_name(t)) for t in range(start, end)]
    if PER_FRAME or NETWORK:
        names = chunk_plan(video)["frame_chunk"]
        folder = "stylized" if PER_FRAME else "network_frames"
        return [results(video, folder, names[t], io.frame_name(t)) for t in range(start, end)]
    sources = chunk_plan(video)["frame_sources"]
    return [
        (
            styled_keyframe(video, t)
            if sources[t] is None
            else results(video, "blended", sources[t], io.frame_name(t))
        )
        for t in range(start, end)
    ]


def processed_frame_inputs(video, start, end):
    """The outputs (files, folders) :func:`processed_frame_paths` of those frames lie in."""
    if is_deflicker_video(video):
        return [results(video, "frames")]
    if PER_FRAME or NETWORK:
        return [
            results(video, "stylized" if PER_FRAME else "network_frames", c["name"])
            for c in chunks.chunks_covering(chunk_plan(video), start, end)
        ]
    keys, gaps = chunks.context_sources(chunk_plan(video)["frame_sources"], start, end)
    return [styled_keyframe(video, k) for k in keys] + [results(video, "blended", g) for g in gaps]


def deflicker_chunk_inputs(wildcards):
    """A deflicker chunk's context (processed frames and guide), and the atlas of its scene
    when blind."""
    start, end = chunk_context(wildcards)
    inputs = {
        "processed": processed_frame_inputs(wildcards.video, start, end),
        "guide": guide_frames(wildcards.video),
        "chunks": results(wildcards.video, "chunks.json"),
    }
    if is_blind(wildcards.video):
        scene = chunk_plan(wildcards.video)["scenes"][this_chunk(wildcards)["scene"]]
        inputs["atlas"] = results(wildcards.video, "atlas", f"{scene[0]:05d}.npy")
    return inputs


def deflicker_chunk_params(wildcards):
    start, end = chunk_context(wildcards)
    chunk = this_chunk(wildcards)
    scene = chunk_plan(wildcards.video)["scenes"][chunk["scene"]]
    return {
        "context": [start, end],
        "targets": [chunk["start"], chunk["end"]],
        "scene": scene,
        "paths": processed_frame_paths(wildcards.video, start, end),
        "blind": is_blind(wildcards.video),
    }


def final_frame_paths(video):
    """The final frames of ``video``, one path per frame: the deflickered (or network's)
    chunks' frames, or the assembled styled keyframes and blends (restyle.assemble)."""
    if by_chunks(video):
        return final_chunk_frame_paths(video, 0, len(chunk_plan(video)["frame_chunk"]))
    plan = keyframe_plan(Namespace(video=video))
    return assemble.restyled_frame_paths(
        plan,
        [styled_keyframe(video, k) for k in plan["keyframes"]],
        [results(video, "blended", g["name"]) for g in plan["gaps"]],
    )


def final_chunk_frame_paths(video, start, end):
    """Paths of the final frames ``start..end - 1`` of a video made chunk by chunk."""
    names = chunk_plan(video)["frame_chunk"]
    return [results(video, final_chunk_dir(video), names[t], io.frame_name(t)) for t in range(start, end)]


def final_frames(wildcards):
    """The outputs the final frames of ``wildcards.video`` lie in (see final_frame_paths)."""
    if by_chunks(wildcards.video):
        return {
            "final": [
                results(wildcards.video, final_chunk_dir(wildcards.video), c["name"])
                for c in chunk_plan(wildcards.video)["chunks"]
            ]
        }
    return assembled_inputs(wildcards)


def scene_atlas_frames(wildcards):
    scene = next(s for s in chunk_plan(wildcards.video)["scenes"] if s[0] == int(wildcards.scene))
    return list(scene)


def measure_chunk_inputs(wildcards):
    """What a chunk's measurement reads: its final frames (and the one before it), the frames
    they were made from, and the frames its flows are computed on."""
    plan = chunk_plan(wildcards.video)
    start, end = chunks.measured_range(plan, this_chunk(wildcards))
    inputs = {
        "final": [
            results(wildcards.video, final_chunk_dir(wildcards.video), c["name"])
            for c in chunks.chunks_covering(plan, start, end)
        ],
        "frames": results(wildcards.video, "frames"),
        "guide": guide_frames(wildcards.video),
    }
    if not is_deflicker_video(wildcards.video):
        inputs["processed"] = processed_frame_inputs(wildcards.video, start, end)
    return inputs


def measure_chunk_params(wildcards):
    video = wildcards.video
    start, end = chunks.measured_range(chunk_plan(video), this_chunk(wildcards))
    restyled = not is_deflicker_video(video)
    before_deflicker = restyled and deflickers(video) and not PER_FRAME
    return {
        "frames": [start, end],
        "final": final_chunk_frame_paths(video, start, end),
        # E_warp of the frames before the deflicker too (per_frame: the per-frame reference is those).
        "before": processed_frame_paths(video, start, end) if before_deflicker else [],
        "flows_on": "input" if restyled else ("guide" if has_guide(video) else "flicker_invariant"),
        "reference_look": evaluate.reference_look(config["stylizer"]) if restyled else None,
        # Frames whose fidelity is not measured here: keyframes (not propagated), and the
        # frame before the chunk, which the chunk before it measures.
        "not_compared": sorted(
            {start} - {this_chunk(wildcards)["start"]}
            | set([] if PER_FRAME or not restyled else chunk_plan(video)["keyframes"])
        ),
    }


def chunk_measurements(wildcards):
    return [
        results(wildcards.video, "measured_chunks", c["name"]) for c in chunk_plan(wildcards.video)["chunks"]
    ]


def measure_inputs(wildcards):
    """What metrics.json is made from: the gaps' measurements and the keyframes and blends
    (no deflicker), or the chunks' measurements (and the plans the report counts)."""
    if not by_chunks(wildcards.video):
        return {
            **assembled_inputs(wildcards),
            "measured": gap_measurements(wildcards),
            "plan": results(wildcards.video, "keyframes.json"),
        }
    inputs = {"measured": chunk_measurements(wildcards), "chunks": results(wildcards.video, "chunks.json")}
    if not is_deflicker_video(wildcards.video) and not PER_FRAME:
        inputs["plan"] = results(wildcards.video, "keyframes.json")
    return inputs


def measure_mode(video):
    """gaps (no deflicker), chunks (restyled and deflickered), per_frame or deflicker_video."""
    if is_deflicker_video(video):
        return "deflicker_video"
    if PER_FRAME:
        return "per_frame"
    return "chunks" if by_chunks(video) else "gaps"


def painted_in_chunk(wildcards):
    """{frame: painted file} of the frames of this chunk (per-frame stylization)."""
    chunk = this_chunk(wildcards)
    return {t: p for t, p in painted_keyframes(wildcards.video).items() if chunk["start"] <= t < chunk["end"]}


# The network stylizer (propagation.method network): a training job per scene, then a
# rendering job per chunk of it.
def network_training_inputs(wildcards):
    """The frames and the scene's styled keyframes: a repainted keyframe retrains its scene only."""
    scene_keys = keyframes.scene_keyframes(keyframe_plan(wildcards), int(wildcards.scene))
    return {
        "frames": results(wildcards.video, "frames"),
        "keyframes": [styled_keyframe(wildcards.video, k) for k in scene_keys],
    }


def network_training_params(wildcards):
    plan = keyframe_plan(wildcards)
    scene = next(s for s in plan["scenes"] if s[0] == int(wildcards.scene))
    return {"keyframes": keyframes.scene_keyframes(plan, scene[0]), "scene": scene}


def network_weights(wildcards):
    """The trained network of this chunk's scene."""
    scene = chunk_plan(wildcards.video)["scenes"][this_chunk(wildcards)["scene"]]
    return results(wildcards.video, "network", f"{scene[0]:05d}.safetensors")


CARRY_RESIDUALS = config["network"]["keyframes"] == "carry"


def network_chunk_keyframes(wildcards):
    """{frame: styled keyframe} of the keyframes a network chunk reads: its own, which come
    out as styled, and (keyframes: carry) those its other frames lie between."""
    chunk = this_chunk(wildcards)
    keys, gaps = chunks.context_sources(
        chunk_plan(wildcards.video)["frame_sources"], chunk["start"], chunk["end"]
    )
    if CARRY_RESIDUALS:
        keys = sorted({*keys, *(k for g in gaps for k in keyframes.parse_gap_name(g))})
    return {k: styled_keyframe(wildcards.video, k) for k in keys}


def network_chunk_params(wildcards):
    """The keyframes around each other frame of the chunk (none when they are not carried)."""
    chunk = this_chunk(wildcards)
    sources = chunk_plan(wildcards.video)["frame_sources"]
    between = {
        t: list(keyframes.parse_gap_name(sources[t]))
        for t in range(chunk["start"], chunk["end"])
        if sources[t] is not None and CARRY_RESIDUALS
    }
    return {"keyframes": network_chunk_keyframes(wildcards), "between": between}


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
