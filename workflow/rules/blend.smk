rule blend_gap:
    """Merge the forward and backward passes of a gap: error-based choice carried along the
    flow, Lab histogram blend, and gradient-domain fusion."""
    input:
        passes=results("{video}", "passes", "{gap}"),
        flow=results("{video}", "flow", "{gap}"),
    output:
        directory(results("{video}", "blended", "{gap}")),
    log:
        "logs/{video}/blend_gap/{gap}.log",
    benchmark:
        results("{video}", "benchmarks", "blend_gap", "{gap}.tsv")
    priority: 3
    group:
        gap_group
    conda:
        "../../envs/restyle.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=60),
        disk_mb=lambda wc: output_mb(wc.video, gap_frames(wc.gap), bytes_per_pixel=4),
        runtime=lambda wc: runtime_min(wc.video, gap_frames(wc.gap), seconds_per_megapixel=1),
    params:
        grad_weight=config["blend"]["grad_weight"],
    script:
        "../../scripts/blend_gap.py"
