"""blend_gap: forward + backward passes of a gap -> blended/<t>.png for each in-between."""
from restyle import io
from restyle.blend import blend_passes
from restyle.flow import warp
from restyle.keyframes import parse_gap_name

io.log_to(snakemake.log[0])
start, end = parse_gap_name(snakemake.wildcards.gap)
fwd, bwd = f"{snakemake.input.passes}/fwd", f"{snakemake.input.passes}/bwd"
carried = None
with io.staged_directory(snakemake.output[0]) as out:
    for t in range(start + 1, end):
        if carried is not None:
            # A pixel that switched to the backward pass stays switched along the motion.
            flow_to_previous = io.load_array(f"{snakemake.input.flow}/flow_b_{t:05d}.npy")
            carried = warp(carried.astype("uint8"), flow_to_previous, "nearest") > 0
        frame, carried = blend_passes(
            io.read_image(f"{fwd}/styled_{t:05d}.png"), io.read_image(f"{bwd}/styled_{t:05d}.png"),
            io.load_array(f"{fwd}/error_{t:05d}.npy"), io.load_array(f"{bwd}/error_{t:05d}.npy"),
            distance_forward=t - start, distance_backward=end - t, carried_mask=carried,
            grad_weight=tuple(snakemake.params.grad_weight))
        io.write_image(out / io.frame_name(t), frame)
