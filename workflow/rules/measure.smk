rule measure:
    """metrics.json: E_warp of output and input, per-frame values, fidelity and sharpness
    against per-frame stylization, and the time spent in each stage."""
    input:
        unpack(assembled_inputs),
        video=results("{video}", "restyled.mp4"),
        frames=results("{video}", "frames"),
        plan=results("{video}", "keyframes.json"),
        meta=results("{video}", "meta.json"),
    output:
        results("{video}", "metrics.json"),
    log:
        "logs/{video}/measure.log",
    benchmark:
        results("{video}", "benchmarks", "measure.tsv")
    conda:
        "../../envs/restyle.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=150),
        disk_mb=10,
        runtime=lambda wc: runtime_min(wc.video, video_frames(wc.video), seconds_per_megapixel=2),
    params:
        flow_preset=config["flow"]["preset"],
        stylizer=config["stylizer"],
        per_frame_reference=config["measure"]["per_frame_reference"],
        painted=lambda wc: sorted(painted_keyframes(wc.video)),
        benchmarks=results("{video}", "benchmarks"),
    script:
        "../../scripts/measure.py"
