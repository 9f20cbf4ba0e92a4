"""synthesize_gap: a keyframe's look carried through its gap -> styled_<t>.png, error_<t>.npy."""
import cv2

from restyle import io
from restyle.keyframes import parse_gap_name
from restyle.propagate import ChainStep, propagate_by_patches, propagate_frame

io.log_to(snakemake.log[0])
params = snakemake.params
start, end = parse_gap_name(snakemake.wildcards.gap)
forward = snakemake.wildcards.direction == "fwd"
source = start if forward else end
frames, guides, flow = snakemake.input.frames, snakemake.input.guides, snakemake.input.flow
styled_keyframe = io.read_image(snakemake.input.keyframe)
keyframe = io.read_frame(frames, source)
order = list(range(start + 1, end) if forward else range(end - 1, start, -1))
link = "b" if forward else "f"  # flow from each frame to the previous one of the chain


def position(t):
    return io.load_array(f"{guides}/pos_{t:05d}.npy")


if params.method == "warp":
    results = (propagate_frame(styled_keyframe, keyframe, io.read_frame(frames, t), position(t),
                               patch_size=params.patch_size) for t in order)
else:
    steps = (ChainStep(frame=io.read_frame(frames, t), edge=io.read_image(f"{guides}/edge_{t:05d}.png"),
                       position=position(t), flow_to_previous=io.load_array(f"{flow}/flow_{link}_{t:05d}.npy"),
                       occluded=cv2.imread(f"{flow}/occ_{link}_{t:05d}.png", cv2.IMREAD_GRAYSCALE) > 0)
             for t in order)
    results = propagate_by_patches(
        styled_keyframe, keyframe, io.read_image(f"{guides}/edge_{source:05d}.png"), steps,
        params.guide_weights, patch_size=params.patch_size, uniformity=params.uniformity,
        search_vote_iters=params.search_vote_iters, patchmatch_iters=params.patchmatch_iters,
        seed=params.seed, output=params.output, coherence=params.coherence, threads=snakemake.threads)
with io.staged_directory(snakemake.output[0]) as out:
    for t, (styled, error) in zip(order, results):
        io.write_image(out / f"styled_{t:05d}.png", styled)
        io.save_array(out / f"error_{t:05d}.npy", error)
