rule compute_flow:
    """Forward and backward DIS flow for each adjacent pair of a gap, plus occlusion masks.

    flow_f_<t>.npy: t -> t+1;  flow_b_<t>.npy: t -> t-1 (N-1 of each for N frames).
    occ_f_<t>.png / occ_b_<t>.png: pixels of t without a match in t+1 / t-1.
    """
    input:
        frames=results("{video}", "frames"),
    output:
        keep(directory(results("{video}", "flow", "{gap}"))),
    params:
        preset=config["flow"]["preset"],
    # Later stages of a gap first (priority rises along flow -> guides -> synthesis ->
    # blend): each gap finishes and frees its temp() files before the next starts,
    # so disk holds a few gaps' intermediates, not the whole clip's.
    priority: 1
    group:
        "gap"
    log:
        "logs/{video}/compute_flow/{gap}.log",
    benchmark:
        results("{video}", "benchmarks", "compute_flow", "{gap}.tsv")
    threads: 1
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=40),
        runtime=lambda wc: runtime_min(wc.video, gap_frames(wc.gap), seconds_per_megapixel=1),
    conda:
        "../../envs/restyle.yaml"
    script:
        "../../scripts/compute_flow.py"
