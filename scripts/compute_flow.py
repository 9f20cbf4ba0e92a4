"""compute_flow: one gap's frames -> flow/<gap>/ (flows and occlusion masks both ways) and
guides/<gap>/ (edge and positional guides per direction); file layout in restyle.gap_store."""
import cv2

from restyle import gap_store, io
from restyle.flow import consecutive_flows, occlusion_mask
from restyle.guides import edge_guide, positional_guides
from restyle.keyframes import parse_gap_name

cv2.setNumThreads(snakemake.threads)
start, end = parse_gap_name(snakemake.wildcards.gap)
frames = snakemake.input.frames


def write_flows(out):
    pairs = consecutive_flows((io.read_frame(frames, t) for t in range(start, end + 1)), snakemake.params.preset)
    for t, (forward, backward) in enumerate(pairs, start):  # t -> t+1, t+1 -> t
        gap_store.write_flow_pair(out, t, forward, backward,
                                  occlusion_mask(forward, backward), occlusion_mask(backward, forward))


def write_guides(flow, out):
    edges = {}  # both directions use the same edge image of a frame
    for direction in gap_store.DIRECTIONS:
        source = gap_store.chain(start, end, direction)[0]
        followers = gap_store.inbetweens(start, end, direction)  # the far keyframe keeps its own look
        toward = gap_store.link(direction)
        flows = (gap_store.read_flow(flow, toward, t) for t in followers)
        occlusions = (gap_store.read_occlusion(flow, toward, t) for t in followers)
        (out / direction).mkdir()
        for t in [source, *followers]:
            if t not in edges:
                edges[t] = edge_guide(io.read_frame(frames, t))
            io.write_image(gap_store.edge_path(out, direction, t), edges[t])
        for t, position in zip(followers, positional_guides(flows, occlusions)):
            io.save_array(gap_store.position_path(out, direction, t), position)


with io.job_log(snakemake.log[0]):
    # Both folders are staged: each appears complete or not at all; if the job dies between
    # the two, Snakemake's incomplete-job marker makes the rerun redo both.
    with io.staged_directory(snakemake.output.flow) as flow, io.staged_directory(snakemake.output.guides) as guides:
        write_flows(flow)
        write_guides(flow, guides)
