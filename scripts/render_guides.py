"""render_guides: one gap -> fwd/ and bwd/, each with pos_<t>.npy (positional) and edge_<t>.png."""
import cv2

from restyle import io
from restyle.guides import edge_guide, positional_guides
from restyle.keyframes import parse_gap_name

io.log_to(snakemake.log[0])
start, end = parse_gap_name(snakemake.wildcards.gap)
flow = snakemake.input.flow
frames = snakemake.input.frames
with io.staged_directory(snakemake.output[0]) as out:
    edges = {}  # both directions use the same edge image of a frame
    for direction in ("fwd", "bwd"):
        forward = direction == "fwd"
        # Each frame of the chain is linked to the one before it *in propagation order*.
        chain = list(range(start, end + 1)) if forward else list(range(end, start - 1, -1))
        link = "b" if forward else "f"
        followers = chain[1:-1]  # the in-between frames; the far keyframe keeps its own look
        flows = (io.load_array(f"{flow}/flow_{link}_{t:05d}.npy") for t in followers)
        occlusions = (cv2.imread(f"{flow}/occ_{link}_{t:05d}.png", cv2.IMREAD_GRAYSCALE) > 0 for t in followers)
        folder = out / direction
        folder.mkdir()
        for t in chain[:1] + followers:
            if t not in edges:
                edges[t] = edge_guide(io.read_frame(frames, t))
            io.write_image(folder / f"edge_{t:05d}.png", edges[t])
        for t, position in zip(followers, positional_guides(flows, occlusions)):
            io.save_array(folder / f"pos_{t:05d}.npy", position)
