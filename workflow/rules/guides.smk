rule render_guides:
    """Edge and positional guides of a gap, for both propagation directions (fwd/, bwd/).

    The colour guide is the frames themselves; the temporal guide is made during synthesis
    from the previous output.
    """
    input:
        frames=results("{video}", "frames"),
        flow=results("{video}", "flow", "{gap}"),
    output:
        keep(directory(results("{video}", "guides", "{gap}"))),
    priority: 2
    group:
        "gap"
    log:
        "logs/{video}/render_guides/{gap}.log",
    benchmark:
        results("{video}", "benchmarks", "render_guides", "{gap}.tsv")
    threads: 1
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=40),
        runtime=lambda wc: runtime_min(wc.video, gap_frames(wc.gap), seconds_per_megapixel=1),
    conda:
        "../../envs/restyle.yaml"
    script:
        "../../scripts/render_guides.py"
