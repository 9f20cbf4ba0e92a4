"""measure: the gaps' measurements (measure_gap) and the pairs of adjacent keyframes, which
no gap holds, or the chunks' measurements (measure_chunk) when the output is deflickered ->
metrics.json."""
from restyle import gap_store, io
from restyle.evaluate import frames_between_stylized_keyframes, measure_frames, pairs_outside_gaps, report
from restyle.flow import consecutive_flows
from restyle.stylize import make_stylizer
from restyle.timings import stage_timings

with io.job_log(snakemake.log[0]):
    params, inputs = snakemake.params, snakemake.input
    reported = params.no_reference is None
    measurements = [io.read_json(gap_store.measurement_path(folder)) for folder in inputs.measured]
    if params.mode == "gaps":
        manifest = io.read_json(inputs.plan)
        paths = params.paths
        stylizer = make_stylizer("builtin", look=params.reference_look) if reported else None
        for frames in pairs_outside_gaps(manifest):
            original = [io.read_frame(inputs.frames, t) for t in frames]
            measurements.append(measure_frames(
                frames, restyled=lambda t: io.read_image(paths[t]), original=dict(zip(frames, original)).__getitem__,
                flows=consecutive_flows(original, params.flow_preset), per_frame_stylizer=stylizer,
                keyframes=manifest["keyframes"]))
    if params.mode == "deflicker_video":
        metrics = report(dict(io.read_json(inputs.chunks), keyframes=[]), measurements, has_reference=True,
                         reference_name="input")
        del metrics["n_keyframes"]
    elif params.mode == "per_frame":
        # Per-frame stylization: every frame is stylized, none propagated.
        manifest = io.read_json(inputs.chunks)
        manifest["keyframes"] = list(range(manifest["n_frames"]))
        metrics = report(manifest, measurements, has_reference=reported,
                         fidelity_frames=set(manifest["keyframes"]) - set(params.painted),
                         no_fidelity_reason=params.no_reference)
    else:
        manifest = io.read_json(inputs.plan)
        metrics = report(manifest, measurements, has_reference=reported,
                         fidelity_frames=frames_between_stylized_keyframes(manifest, set(params.painted)),
                         no_fidelity_reason=params.no_reference)
    metrics["timings"] = stage_timings(params.benchmarks)
    metrics["video"] = snakemake.wildcards.video
    io.write_json(snakemake.output[0], metrics)
