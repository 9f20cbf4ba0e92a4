rule stylize_keyframe:
    """One keyframe's look: the user's painted file if there is one, else the stylizer."""
    input:
        frames=results("{video}", "frames"),
        painted=painted_input,
    output:
        results("{video}", "styled_keyframes", "{frame}.png"),
    params:
        stylizer=config["stylizer"],
    log:
        "logs/{video}/stylize_keyframe/{frame}.log",
    benchmark:
        results("{video}", "benchmarks", "stylize_keyframe", "{frame}.tsv")
    threads: 1
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=30),
    conda:
        "../../envs/restyle.yaml"
    script:
        "../../scripts/stylize_keyframe.py"
