rule compute_flow:
    """Forward and backward DIS flow for each adjacent pair of a gap, occlusion masks, and
    the guides made from them.

    flow/: flow_f_<t>.npy: t -> t+1;  flow_b_<t>.npy: t -> t-1 (N-1 of each for N frames);
    occ_f_<t>.png / occ_b_<t>.png: pixels of t without a match in t+1 / t-1.
    guides/: fwd/ and bwd/ (propagation directions): edge_<t>.png (edge guide) and
    pos_<t>.npy (positional guide: keyframe coordinates carried along the flow).  The colour
    guide is the frames themselves; the temporal guide is made during synthesis.  One job
    for both keeps a long clip's DAG at four jobs per gap.
    """
    input:
        frames=results("{video}", "frames"),
    output:
        flow=keep(directory(results("{video}", "flow", "{gap}"))),
        guides=keep(directory(results("{video}", "guides", "{gap}"))),
    log:
        "logs/{video}/compute_flow/{gap}.log",
    benchmark:
        results("{video}", "benchmarks", "compute_flow", "{gap}.tsv")
    # Later stages of a gap first (priority rises along flow -> synthesis -> blend; keyframes
    # come before all): each gap finishes and frees its temp() files before the next gets far,
    # so disk holds a few gaps' intermediates, not the whole clip's.
    priority: 1
    group:
        gap_group
    conda:
        "../../envs/restyle.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=40),
        disk_mb=lambda wc: output_mb(wc.video, gap_frames(wc.gap), bytes_per_pixel=33),
        runtime=lambda wc: runtime_min(wc.video, gap_frames(wc.gap), seconds_per_megapixel=2),
    params:
        preset=config["flow"]["preset"],
    script:
        "../../scripts/compute_flow.py"
