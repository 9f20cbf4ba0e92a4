"""measure_gap: one gap's output, input and flows -> measured/<gap>/ (its E_warp pairs and
the fidelity of its in-between frames; see restyle.evaluate)."""
from restyle import gap_store, io
from restyle.evaluate import measure_frames
from restyle.keyframes import parse_gap_name
from restyle.stylize import make_stylizer

with io.job_log(snakemake.log[0]):
    start, end = parse_gap_name(snakemake.wildcards.gap)
    flow, look = snakemake.input.flow, snakemake.params.reference_look
    keyframes = {start: snakemake.input.left, end: snakemake.input.right}
    measurement = measure_frames(
        range(start, end + 1),
        restyled=lambda t: io.read_image(keyframes[t]) if t in keyframes else io.read_frame(snakemake.input.blended, t),
        original=lambda t: io.read_frame(snakemake.input.frames, t),
        # flow(I_t -> I_t+1) and flow(I_t+1 -> I_t) of each pair: E_warp's F and B.
        flows=((gap_store.read_flow(flow, "f", t), gap_store.read_flow(flow, "b", t + 1)) for t in range(start, end)),
        per_frame_stylizer=make_stylizer("builtin", look=look) if look else None,
        keyframes=keyframes,
    )
    with io.staged_directory(snakemake.output[0]) as out:
        io.write_json(gap_store.measurement_path(out), measurement)
