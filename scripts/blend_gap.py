"""blend_gap: forward + backward passes of a gap -> blended/<t>.png for each in-between."""
from restyle import gap_store, io
from restyle.blend import blend_passes
from restyle.flow import warp
from restyle.keyframes import parse_gap_name

with io.job_log(snakemake.log[0]):
    start, end = parse_gap_name(snakemake.wildcards.gap)
    passes, flow = snakemake.input.passes, snakemake.input.flow
    carried = None
    with io.staged_directory(snakemake.output[0]) as out:
        for t in range(start + 1, end):
            if carried is not None:
                # A pixel that switched to the backward pass stays switched along the motion.
                carried = warp(carried.astype("uint8"), gap_store.read_flow(flow, "b", t), "nearest") > 0
            styled_forward, error_forward = gap_store.read_pass(passes, gap_store.FORWARD, t)
            styled_backward, error_backward = gap_store.read_pass(passes, gap_store.BACKWARD, t)
            frame, carried = blend_passes(
                styled_forward, styled_backward, error_forward, error_backward,
                distance_forward=t - start, distance_backward=end - t, carried_mask=carried,
                grad_weight=tuple(snakemake.params.grad_weight))
            io.write_image(out / io.frame_name(t), frame)
