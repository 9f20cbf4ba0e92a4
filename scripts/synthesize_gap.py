"""synthesize_gap: both passes of a gap -> passes/<gap>/<direction>/ (styled frames and their
errors; layout in restyle.gap_store)."""
import logging
import time

from restyle import gap_store, io
from restyle.keyframes import parse_gap_name
from restyle.propagate import ChainStep, propagate_by_patches, propagate_frame

params = snakemake.params
start, end = parse_gap_name(snakemake.wildcards.gap)
frames, flow, guides = snakemake.input.frames, snakemake.input.flow, snakemake.input.guides


def propagate(direction):
    """(frame number, styled, error) of one pass, in propagation order."""
    source = gap_store.chain(start, end, direction)[0]
    styled_keyframe = io.read_image(snakemake.input.left if source == start else snakemake.input.right)
    keyframe = io.read_frame(frames, source)
    order = gap_store.inbetweens(start, end, direction)
    positions = (gap_store.read_position(guides, direction, t) for t in order)
    if params.method == "warp":
        results = (propagate_frame(styled_keyframe, keyframe, io.read_frame(frames, t), position,
                                   patch_size=params.patch_size) for t, position in zip(order, positions))
    else:
        steps = (ChainStep(frame=io.read_frame(frames, t), edge=gap_store.read_edge(guides, direction, t),
                           position=position, flow_to_previous=flow_to_previous, occluded=occluded)
                 for (t, flow_to_previous, occluded), position
                 in zip(gap_store.chain_links(flow, start, end, direction), positions))
        results = propagate_by_patches(
            styled_keyframe, keyframe, gap_store.read_edge(guides, direction, source), steps,
            guide_weights=params.guide_weights, patch_size=params.patch_size, uniformity=params.uniformity,
            search_vote_iters=params.search_vote_iters, patchmatch_iters=params.patchmatch_iters,
            seed=params.seed, output=params.output, coherence=params.coherence, threads=snakemake.threads)
    for t, (styled, error) in zip(order, results):
        yield t, styled, error


with io.job_log(snakemake.log[0]), io.staged_directory(snakemake.output[0]) as out:
    for direction in gap_store.DIRECTIONS:
        began = time.perf_counter()
        (out / direction).mkdir()
        for t, styled, error in propagate(direction):
            gap_store.write_pass(out, direction, t, styled, error)
            logging.info("%s frame %d: %.3f s since the pass began", direction, t, time.perf_counter() - began)
