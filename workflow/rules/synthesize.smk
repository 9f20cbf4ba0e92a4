rule synthesize_gap:
    """Carry one keyframe's look through its gap in one direction, with per-pixel errors."""
    input:
        frames=results("{video}", "frames"),
        guides=results("{video}", "guides", "{gap}", "{direction}"),
        flow=results("{video}", "flow", "{gap}"),
        keyframe=source_keyframe,
    output:
        keep(directory(results("{video}", "passes", "{gap}", "{direction}"))),
    params:
        **config["propagation"],
    log:
        "logs/{video}/synthesize_gap/{gap}-{direction}.log",
    benchmark:
        results("{video}", "benchmarks", "synthesize_gap", "{gap}-{direction}.tsv")
    threads: 2
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=200),
    conda:
        "../../envs/restyle.yaml"
    script:
        "../../scripts/synthesize_gap.py"
