rule detect_scenes:
    """Find hard cuts with PySceneDetect on the extracted frames (a deflicker video's guide,
    when it has one)."""
    input:
        unpack(scene_source),
    output:
        results("{video}", "scenes.json"),
    log:
        "logs/{video}/detect_scenes.log",
    benchmark:
        results("{video}", "benchmarks", "detect_scenes.tsv")
    conda:
        "../../envs/restyle.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=20),
        disk_mb=10,
        runtime=lambda wc: runtime_min(wc.video, video_frames(wc.video), seconds_per_megapixel=0.1),
    params:
        **config["scenes"],
        # A flickering video without a guide: cuts are found on its flicker-invariant frames,
        # or every jump in exposure would read as one.
        flicker_invariant=lambda wc: is_blind(wc.video),
    script:
        "../../scripts/detect_scenes.py"


checkpoint plan_keyframes:
    """Choose keyframes and gaps: a small manifest the rest of the DAG is built from."""
    input:
        scenes=results("{video}", "scenes.json"),
    output:
        results("{video}", "keyframes.json"),
    log:
        "logs/{video}/plan_keyframes.log",
    benchmark:
        results("{video}", "benchmarks", "plan_keyframes.tsv")
    conda:
        "../../envs/restyle.yaml"
    threads: 1
    resources:
        mem_mb=200,
        disk_mb=10,
        runtime=10,
    params:
        interval=config["keyframes"]["interval"],
        extra=lambda wc: config["keyframes"]["extra"].get(wc.video, []),
        painted_dir=lambda wc: painted_dir(wc.video),
    script:
        "../../scripts/plan_keyframes.py"
