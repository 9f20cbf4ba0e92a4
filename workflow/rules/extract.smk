rule extract_frames:
    """Decode the video to numbered PNGs at a constant frame rate, plus meta.json."""
    input:
        video=lambda wc: config["videos"][wc.video],
    output:
        frames=directory(results("{video}", "frames")),
        meta=results("{video}", "meta.json"),
    params:
        width=config["width"],
    log:
        "logs/{video}/extract_frames.log",
    benchmark:
        results("{video}", "benchmarks", "extract_frames.tsv")
    threads: 2
    resources:
        mem_mb=1000,
    conda:
        "../../envs/restyle.yaml"
    script:
        "../../scripts/extract_frames.py"
