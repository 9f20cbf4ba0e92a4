rule measure_gap:
    """A gap's share of metrics.json, measured while its flows exist: E_warp of each pair of
    adjacent frames (output, input and per-frame reference) through compute_flow's flows,
    which are those of the E_warp protocol (DIS of the input frames, both ways), and PSNR and
    sharpness of the in-between frames against the per-frame reference.  The reference is
    measured whether metrics.json reports it or not (measure.per_frame_reference): turning
    that on later then reruns measure only, not every gap, whose flows are gone."""
    input:
        unpack(gap_keyframes),
        frames=results("{video}", "frames"),
        flow=results("{video}", "flow", "{gap}"),
        blended=results("{video}", "blended", "{gap}"),
    output:
        directory(results("{video}", "measured", "{gap}")),
    log:
        "logs/{video}/measure_gap/{gap}.log",
    benchmark:
        results("{video}", "benchmarks", "measure_gap", "{gap}.tsv")
    # Right after the gap's blend: the gap's flows are deleted once this has read them.
    priority: 4
    group:
        gap_group
    conda:
        "../../envs/restyle.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=150),
        disk_mb=10,
        runtime=lambda wc: runtime_min(wc.video, gap_frames(wc.gap), seconds_per_megapixel=2),
    params:
        reference_look=evaluate.reference_look(config["stylizer"]),
    script:
        "../../scripts/measure_gap.py"


rule measure:
    """metrics.json: E_warp of output and input, per-frame values, fidelity and sharpness
    against per-frame stylization, and the time spent in each stage.  The gaps' numbers come
    from measure_gap; the pairs of adjacent keyframes, which no gap holds, are measured here."""
    input:
        unpack(measure_inputs),
        video=lambda wc: results(wc.video, final_video_name(wc.video)),
        frames=results("{video}", "frames"),
        meta=results("{video}", "meta.json"),
    output:
        results("{video}", "metrics.json"),
    log:
        "logs/{video}/measure.log",
    benchmark:
        results("{video}", "benchmarks", "measure.tsv")
    conda:
        "../../envs/restyle.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=150),
        disk_mb=10,
        runtime=lambda wc: runtime_min(wc.video, video_frames(wc.video), seconds_per_megapixel=0.2),
    params:
        mode=lambda wc: measure_mode(wc.video),
        paths=lambda wc: final_frame_paths(wc.video),
        flow_preset=config["flow"]["preset"],
        no_reference=evaluate.no_reference_reason(
            config["measure"]["per_frame_reference"], config["stylizer"]
        ),
        reference_look=evaluate.reference_look(config["stylizer"]),
        painted=lambda wc: sorted(painted_keyframes(wc.video)),
        benchmarks=results("{video}", "benchmarks"),
    script:
        "../../scripts/measure.py"
