rule encode_video:
    """H.264 mp4 at the source frame rate, with the source audio muxed back."""
    input:
        # Where the final frames lie (final_frame_paths names each one).
        unpack(final_frames),
        # Read by encode_compare only (its left half); the frames are kept outputs.
        frames=results("{video}", "frames"),
        # Not read: a gap is done once measured too, while its flows exist (measure_gap), so
        # asking for the video alone and for metrics.json later never recomputes a gap.
        measured=gap_measurements,
        meta=results("{video}", "meta.json"),
        source=source_video,
    output:
        results("{video}", "restyled.mp4"),
    log:
        "logs/{video}/encode_video.log",
    benchmark:
        results("{video}", "benchmarks", "encode_video.tsv")
    conda:
        "../../envs/restyle.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=40),
        disk_mb=lambda wc: output_mb(wc.video, video_frames(wc.video), bytes_per_pixel=0.5),
        runtime=lambda wc: runtime_min(wc.video, video_frames(wc.video), seconds_per_megapixel=0.1),
    params:
        crf=config["output"]["crf"],
        paths=lambda wc: final_frame_paths(wc.video),
    script:
        "../../scripts/encode_video.py"


use rule encode_video as encode_compare with:
    # Side-by-side input | restyled video, for judging the result at a glance.
    output:
        results("{video}", "compare.mp4"),
    log:
        "logs/{video}/encode_compare.log",
    benchmark:
        results("{video}", "benchmarks", "encode_compare.tsv")


use rule encode_video as encode_deflickered with:
    # A deflicker video's output (deflicker_videos), with its source's audio.
    output:
        results("{video}", "deflickered.mp4"),
    log:
        "logs/{video}/encode_deflickered.log",
    benchmark:
        results("{video}", "benchmarks", "encode_deflickered.tsv")
