"""measure: restyled frames vs input frames -> metrics.json."""
from restyle import assemble, io
from restyle.evaluate import evaluate_video, frames_between_stylized_keyframes
from restyle.stylize import make_stylizer
from restyle.timings import stage_timings

io.log_to(snakemake.log[0])
params = snakemake.params
manifest = io.read_json(snakemake.input.plan)
paths = assemble.restyled_frame_paths(manifest, snakemake.input.keyframes, snakemake.input.gaps)
stylizer, reason = None, None
if not params.per_frame_reference:
    reason = "measure.per_frame_reference is off"
elif params.stylizer["backend"] != "builtin":
    # Stylizing every frame with diffusion only to measure would cost more than the render.
    reason = f"no per-frame reference for the {params.stylizer['backend']} stylizer (it runs on keyframes only)"
else:
    stylizer = make_stylizer("builtin", look=params.stylizer["look"])
report = evaluate_video(
    manifest,
    restyled=lambda t: io.read_image(paths[t]),
    original=lambda t: io.read_frame(snakemake.input.frames, t),
    per_frame_stylizer=stylizer,
    flow_preset=params.flow_preset,
    fidelity_frames=frames_between_stylized_keyframes(manifest, set(params.painted)),
    no_fidelity_reason=reason,
)
report["timings"] = stage_timings(params.benchmarks)
report["video"] = snakemake.wildcards.video
io.write_json(snakemake.output[0], report)
