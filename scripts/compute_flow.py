"""compute_flow: one gap's frames -> flow_f/flow_b .npy and occlusion masks occ_f/occ_b .png."""
import cv2

from restyle import io
from restyle.flow import compute_flow, occlusion_mask
from restyle.keyframes import parse_gap_name

io.log_to(snakemake.log[0])
cv2.setNumThreads(snakemake.threads)
start, end = parse_gap_name(snakemake.wildcards.gap)
frames = snakemake.input.frames
with io.staged_directory(snakemake.output[0]) as out:
    current = io.read_frame(frames, start)
    for t in range(start, end):
        following = io.read_frame(frames, t + 1)
        forward = compute_flow(current, following, snakemake.params.preset)   # t -> t+1
        backward = compute_flow(following, current, snakemake.params.preset)  # t+1 -> t
        io.save_array(out / f"flow_f_{t:05d}.npy", forward)
        io.save_array(out / f"flow_b_{t + 1:05d}.npy", backward)
        io.write_image(out / f"occ_f_{t:05d}.png", occlusion_mask(forward, backward).astype("uint8") * 255)
        io.write_image(out / f"occ_b_{t + 1:05d}.png", occlusion_mask(backward, forward).astype("uint8") * 255)
        current = following
