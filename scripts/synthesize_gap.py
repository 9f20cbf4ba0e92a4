"""synthesize_gap: both passes of a gap -> passes/<gap>/{fwd,bwd}/styled_<t>.png, error_<t>.npy."""
import logging
import time

import cv2

from restyle import io
from restyle.keyframes import parse_gap_name
from restyle.propagate import ChainStep, propagate_by_patches, propagate_frame

io.log_to(snakemake.log[0])
params = snakemake.params
start, end = parse_gap_name(snakemake.wildcards.gap)
frames, flow = snakemake.input.frames, snakemake.input.flow


def propagate(direction):
    """(frame number, styled, error) of one pass, in propagation order."""
    forward = direction == "fwd"
    source = start if forward else end
    guides = f"{snakemake.input.guides}/{direction}"
    styled_keyframe = io.read_image(snakemake.input.left if forward else snakemake.input.right)
    keyframe = io.read_frame(frames, source)
    order = list(range(start + 1, end) if forward else range(end - 1, start, -1))
    link = "b" if forward else "f"  # flow from each frame to the previous one of the chain
    positions = (io.load_array(f"{guides}/pos_{t:05d}.npy") for t in order)
    if params.method == "warp":
        results = (propagate_frame(styled_keyframe, keyframe, io.read_frame(frames, t), position,
                                   patch_size=params.patch_size) for t, position in zip(order, positions))
    else:
        steps = (ChainStep(frame=io.read_frame(frames, t), edge=io.read_image(f"{guides}/edge_{t:05d}.png"),
                           position=position, flow_to_previous=io.load_array(f"{flow}/flow_{link}_{t:05d}.npy"),
                           occluded=cv2.imread(f"{flow}/occ_{link}_{t:05d}.png", cv2.IMREAD_GRAYSCALE) > 0)
                 for t, position in zip(order, positions))
        results = propagate_by_patches(
            styled_keyframe, keyframe, io.read_image(f"{guides}/edge_{source:05d}.png"), steps,
            params.guide_weights, patch_size=params.patch_size, uniformity=params.uniformity,
            search_vote_iters=params.search_vote_iters, patchmatch_iters=params.patchmatch_iters,
            seed=params.seed, output=params.output, coherence=params.coherence, threads=snakemake.threads)
    for t, (styled, error) in zip(order, results):
        yield t, styled, error


with io.staged_directory(snakemake.output[0]) as out:
    for direction in ("fwd", "bwd"):
        began = time.perf_counter()
        (out / direction).mkdir()
        for t, styled, error in propagate(direction):
            io.write_image(out / direction / f"styled_{t:05d}.png", styled)
            io.save_array(out / direction / f"error_{t:05d}.npy", error)
            logging.info("%s frame %d: %.3f s since the pass began", direction, t, time.perf_counter() - began)
