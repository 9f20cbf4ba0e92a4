"""measure: the gaps' measurements (measure_gap) and the pairs of adjacent keyframes, which
no gap holds -> metrics.json."""
from restyle import assemble, gap_store, io
from restyle.evaluate import frames_between_stylized_keyframes, measure_frames, pairs_outside_gaps, report
from restyle.flow import consecutive_flows
from restyle.stylize import make_stylizer
from restyle.timings import stage_timings

with io.job_log(snakemake.log[0]):
    params = snakemake.params
    manifest = io.read_json(snakemake.input.plan)
    paths = assemble.restyled_frame_paths(manifest, snakemake.input.keyframes, snakemake.input.gaps)
    reported = params.no_reference is None
    stylizer = make_stylizer("builtin", look=params.reference_look) if reported else None
    measurements = [io.read_json(gap_store.measurement_path(folder)) for folder in snakemake.input.measured]
    for frames in pairs_outside_gaps(manifest):
        original = [io.read_frame(snakemake.input.frames, t) for t in frames]
        measurements.append(measure_frames(
            frames, restyled=lambda t: io.read_image(paths[t]), original=dict(zip(frames, original)).__getitem__,
            flows=consecutive_flows(original, params.flow_preset), per_frame_stylizer=stylizer,
            keyframes=manifest["keyframes"]))
    metrics = report(manifest, measurements, has_reference=reported,
                     fidelity_frames=frames_between_stylized_keyframes(manifest, set(params.painted)),
                     no_fidelity_reason=params.no_reference)
    metrics["timings"] = stage_timings(params.benchmarks)
    metrics["video"] = snakemake.wildcards.video
    io.write_json(snakemake.output[0], metrics)
