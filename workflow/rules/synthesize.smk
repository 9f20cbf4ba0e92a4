rule synthesize_gap:
    """Carry the keyframes' look through a gap: forward from the left keyframe and backward
    from the right one, each frame with a per-pixel error.  One job does both directions so
    the synthesis engine starts once per gap."""
    input:
        unpack(gap_keyframes),
        frames=results("{video}", "frames"),
        guides=results("{video}", "guides", "{gap}"),
        flow=results("{video}", "flow", "{gap}"),
    output:
        keep(directory(results("{video}", "passes", "{gap}"))),
    log:
        "logs/{video}/synthesize_gap/{gap}.log",
    benchmark:
        results("{video}", "benchmarks", "synthesize_gap", "{gap}.tsv")
    priority: 2
    group:
        gap_group
    conda:
        "../../envs/restyle.yaml"
    # One thread per job: gaps run side by side instead, and a
    # 2-thread job never waits for two free cores while 1-thread flows of other gaps take
    # them, which would compute (and store) every flow of the clip before any synthesis.
    threads: 1
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=300),
        disk_mb=lambda wc: output_mb(wc.video, gap_frames(wc.gap), bytes_per_pixel=9),
        runtime=lambda wc: runtime_min(wc.video, gap_frames(wc.gap), seconds_per_megapixel=5),
    params:
        **config["propagation"],
    script:
        "../../scripts/synthesize_gap.py"
