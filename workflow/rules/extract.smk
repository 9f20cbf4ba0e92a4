rule extract_frames:
    """Decode the video to numbered PNGs at a constant frame rate, plus meta.json."""
    input:
        video=lambda wc: config["videos"][wc.video],
    output:
        frames=directory(results("{video}", "frames")),
        meta=results("{video}", "meta.json"),
    log:
        "logs/{video}/extract_frames.log",
    benchmark:
        results("{video}", "benchmarks", "extract_frames.tsv")
    conda:
        "../../envs/restyle.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=20),
        disk_mb=lambda wc: output_mb(wc.video, video_frames(wc.video), bytes_per_pixel=4),
        runtime=lambda wc: runtime_min(wc.video, video_frames(wc.video), seconds_per_megapixel=0.1),
    params:
        width=config["width"],
        decode_errors=config["decode_errors"],
    script:
        "../../scripts/extract_frames.py"
