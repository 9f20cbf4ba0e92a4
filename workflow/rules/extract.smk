rule extract_frames:
    """Decode the video to numbered PNGs at a constant frame rate, plus meta.json."""
    input:
        video=source_video,
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


use rule extract_frames as extract_guide with:
    # A deflicker video's guide, extracted the same way (same size, rate and damage handling).
    input:
        video=guide_video,
    output:
        frames=directory(results("{video}", "guide", "frames")),
        meta=results("{video}", "guide", "meta.json"),
    log:
        "logs/{video}/extract_guide.log",
    benchmark:
        results("{video}", "benchmarks", "extract_guide.tsv")
