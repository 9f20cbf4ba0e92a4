rule synthesize_gap:
    """Carry one keyframe's look through its gap in one direction, with per-pixel errors."""
    input:
        frames=results("{video}", "frames"),
        guides=results("{video}", "guides", "{gap}", "{direction}"),
        keyframe=source_keyframe,
    output:
        keep(directory(results("{video}", "passes", "{gap}", "{direction}"))),
    params:
        method=config["propagation"]["method"],
        patch_size=config["propagation"]["patch_size"],
    log:
        "logs/{video}/synthesize_gap/{gap}-{direction}.log",
    benchmark:
        results("{video}", "benchmarks", "synthesize_gap", "{gap}-{direction}.tsv")
    threads: 1
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=40),
    conda:
        "../../envs/restyle.yaml"
    script:
        "../../scripts/synthesize_gap.py"
