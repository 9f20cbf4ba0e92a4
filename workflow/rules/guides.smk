rule render_guides:
    """Edge and positional guides for one propagation direction of a gap.

    The colour guide is the frames themselves; the temporal guide is made during synthesis
    from the previous output.
    """
    input:
        frames=results("{video}", "frames"),
        flow=results("{video}", "flow", "{gap}"),
    output:
        keep(directory(results("{video}", "guides", "{gap}", "{direction}"))),
    log:
        "logs/{video}/render_guides/{gap}-{direction}.log",
    benchmark:
        results("{video}", "benchmarks", "render_guides", "{gap}-{direction}.tsv")
    threads: 1
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=40),
    conda:
        "../../envs/restyle.yaml"
    script:
        "../../scripts/render_guides.py"
