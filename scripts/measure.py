"""measure: restyled frames vs input frames -> metrics.json."""
from restyle import assemble, io
from restyle.evaluate import evaluate_video
from restyle.stylize import make_stylizer
from restyle.timings import stage_timings

io.log_to(snakemake.log[0])
manifest = io.read_json(snakemake.input.plan)
paths = assemble.restyled_frame_paths(manifest, snakemake.input.keyframes, snakemake.input.gaps)
stylizer = None
if snakemake.params.per_frame_reference:
    options = dict(snakemake.params.stylizer)
    stylizer = make_stylizer(options.pop("backend"), **options)
report = evaluate_video(
    manifest,
    restyled=lambda t: io.read_image(paths[t]),
    original=lambda t: io.read_frame(snakemake.input.frames, t),
    per_frame_stylizer=stylizer,
    flow_preset=snakemake.params.flow_preset,
)
report["timings"] = stage_timings(snakemake.params.benchmarks)
report["video"] = snakemake.wildcards.video
io.write_json(snakemake.output[0], report)
