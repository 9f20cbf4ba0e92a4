rule record_keyframe:
    """Diffusion backend: a keyframe stylized with the base settings, and the record of its
    decoder self-attention that later keyframes of the scene attend to (cross-frame
    attention).  Overrides never reach it, so changing one touches no other keyframe."""
    input:
        frames=results("{video}", "frames"),
        references=attention_references,
    output:
        image=results("{video}", "diffusion", "{frame}.png"),
        record=results("{video}", "diffusion", "{frame}.safetensors"),
    log:
        "logs/{video}/record_keyframe/{frame}.log",
    benchmark:
        results("{video}", "benchmarks", "record_keyframe", "{frame}.tsv")
    # A scene's records form one chain (each attends to earlier ones): one submission per
    # scene, one GPU, keyframes in order.
    group:
        "diffusion"
    conda:
        "../../envs/restyle-diffusion.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        disk_mb=100,
        runtime=60,
    params:
        stylizer=lambda wc: stylizer_options(),
    script:
        "../../scripts/record_keyframe.py"


rule stylize_keyframe:
    """One keyframe's look: the user's painted file if there is one, else the stylizer
    (for diffusion: the recorded base image, or a run with this keyframe's override)."""
    input:
        frames=results("{video}", "frames"),
        painted=painted_input,
        diffusion=diffusion_inputs,
    output:
        results("{video}", "styled_keyframes", "{frame}.png"),
    log:
        "logs/{video}/stylize_keyframe/{frame}.log",
    benchmark:
        results("{video}", "benchmarks", "stylize_keyframe", "{frame}.tsv")
    # Before flows (priority 1): a gap's synthesis can start as soon as its flows are done,
    # instead of every flow of the clip being computed (and stored) first.
    priority: 4
    group:
        keyframe_group
    conda:
        "../../envs/restyle-diffusion.yaml" if DIFFUSION else "../../envs/restyle.yaml"
    threads: 2 if DIFFUSION else 1
    resources:
        gpu=lambda wc: int(keyframe_styling(wc) == stylize.OVERRIDE),
        mem_mb=lambda wc: 8000 if DIFFUSION else frame_mem_mb(wc.video, per_frame=30),
        disk_mb=lambda wc: output_mb(wc.video, 1, bytes_per_pixel=4),
        runtime=60 if DIFFUSION else 10,
    params:
        stylizer=lambda wc: stylizer_options(),
        backend=config["stylizer"]["backend"],
        scene_batch=SCENE_BATCHES,
        override=keyframe_override,
    script:
        "../../scripts/stylize_keyframe.py"


rule stylize_scene:
    """Diffusion with latent deflickering (DiffSynth): all keyframes of one scene stylized in
    one batch, aligned to each other by optical flow at the chosen denoising steps."""
    input:
        frames=results("{video}", "frames"),
        plan=results("{video}", "keyframes.json"),
    output:
        directory(results("{video}", "diffusion_scenes", "{scene}")),
    log:
        "logs/{video}/stylize_scene/{scene}.log",
    benchmark:
        results("{video}", "benchmarks", "stylize_scene", "{scene}.tsv")
    conda:
        "../../envs/restyle-diffusion.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        disk_mb=100,
        runtime=lambda wc: 60 + 10 * len(keyframes.scene_keyframes(keyframe_plan(wc), int(wc.scene))),
    params:
        stylizer=lambda wc: stylizer_options(),
        overrides=video_overrides,
        deflicker={k: config["stylizer"][k] for k in DEFLICKER_KEYS},
        flow_preset=config["flow"]["preset"],
    script:
        "../../scripts/stylize_scene.py"
