"""compute_flow: one gap's frames -> flow/ (flow_f/flow_b .npy, occlusion masks occ_f/occ_b
.png) and guides/ (fwd/ and bwd/: positional pos_<t>.npy and edge edge_<t>.png)."""
import cv2

from restyle import io
from restyle.flow import compute_flow, occlusion_mask
from restyle.guides import edge_guide, positional_guides
from restyle.keyframes import parse_gap_name

io.log_to(snakemake.log[0])
cv2.setNumThreads(snakemake.threads)
start, end = parse_gap_name(snakemake.wildcards.gap)
frames = snakemake.input.frames


def write_flows(out):
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


def write_guides(flow, out):
    edges = {}  # both directions use the same edge image of a frame
    for direction in ("fwd", "bwd"):
        forward = direction == "fwd"
        # Each frame of the chain is linked to the one before it *in propagation order*.
        chain = list(range(start, end + 1)) if forward else list(range(end, start - 1, -1))
        link = "b" if forward else "f"
        followers = chain[1:-1]  # the in-between frames; the far keyframe keeps its own look
        flows = (io.load_array(flow / f"flow_{link}_{t:05d}.npy") for t in followers)
        occlusions = (cv2.imread(str(flow / f"occ_{link}_{t:05d}.png"), cv2.IMREAD_GRAYSCALE) > 0
                      for t in followers)
        folder = out / direction
        folder.mkdir()
        for t in chain[:1] + followers:
            if t not in edges:
                edges[t] = edge_guide(io.read_frame(frames, t))
            io.write_image(folder / f"edge_{t:05d}.png", edges[t])
        for t, position in zip(followers, positional_guides(flows, occlusions)):
            io.save_array(folder / f"pos_{t:05d}.npy", position)


# Both folders are staged: each appears complete or not at all; if the job dies between
# the two, Snakemake's incomplete-job marker makes the rerun redo both.
with io.staged_directory(snakemake.output.flow) as flow, io.staged_directory(snakemake.output.guides) as guides:
    write_flows(flow)
    write_guides(flow, guides)
