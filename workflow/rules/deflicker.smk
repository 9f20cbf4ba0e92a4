checkpoint plan_chunks:
    """Split each scene into chunks of deflicker.frames_per_job frames: the jobs of the
    deflicker (and per-frame stylization) stage (restyle.chunks)."""
    input:
        unpack(chunk_plan_input),
    output:
        results("{video}", "chunks.json"),
    log:
        "logs/{video}/plan_chunks.log",
    benchmark:
        results("{video}", "benchmarks", "plan_chunks.tsv")
    # First thing after the keyframe plan: until this checkpoint has run, Snakemake cannot
    # know every reader of a temp() output, and deletes none.
    priority: 10
    conda:
        "../../envs/restyle.yaml"
    threads: 1
    resources:
        mem_mb=200,
        disk_mb=10,
        runtime=10,
    params:
        frames_per_job=config["deflicker"]["frames_per_job"],
    script:
        "../../scripts/plan_chunks.py"


rule stylize_chunk:
    """propagation.method per_frame: the stylizer on every frame of a chunk (a painted frame
    stands for itself), one job per chunk rather than per frame."""
    input:
        frames=results("{video}", "frames"),
        painted=lambda wc: list(painted_in_chunk(wc).values()),
    output:
        directory(results("{video}", "stylized", "{chunk}")),
    log:
        "logs/{video}/stylize_chunk/{chunk}.log",
    benchmark:
        results("{video}", "benchmarks", "stylize_chunk", "{chunk}.tsv")
    conda:
        "../../envs/restyle-diffusion.yaml" if DIFFUSION else "../../envs/restyle.yaml"
    threads: 2 if DIFFUSION else 1
    resources:
        gpu=int(DIFFUSION),
        mem_mb=lambda wc: 8000 if DIFFUSION else frame_mem_mb(wc.video, per_frame=30),
        disk_mb=lambda wc: output_mb(wc.video, config["deflicker"]["frames_per_job"], bytes_per_pixel=4),
        runtime=lambda wc: 60 * config["deflicker"]["frames_per_job"] if DIFFUSION else 10,
    params:
        backend=config["stylizer"]["backend"],
        stylizer=lambda wc: stylizer_options(),
        painted=painted_in_chunk,
    script:
        "../../scripts/stylize_chunk.py"


rule deflicker_atlas:
    """Blind deflickering: the flawed atlas of one scene as colour maps (restyle.deflicker.
    shot_colour_maps): per frame, the smooth map onto the scene's flicker-free reference."""
    input:
        frames=results("{video}", "frames"),
        chunks=results("{video}", "chunks.json"),
    output:
        results("{video}", "atlas", "{scene}.npy"),
    log:
        "logs/{video}/deflicker_atlas/{scene}.log",
    benchmark:
        results("{video}", "benchmarks", "deflicker_atlas", "{scene}.tsv")
    conda:
        "../../envs/restyle.yaml"
    threads: 2
    resources:
        mem_mb=300,
        disk_mb=10,
        runtime=lambda wc: max(10, len(range(*scene_atlas_frames(wc))) // 200),
    params:
        frames=scene_atlas_frames,
        settings=remap_settings(),
        blind=config["deflicker"]["blind"],
    script:
        "../../scripts/deflicker_atlas.py"


rule deflicker_chunk:
    """Deflicker one chunk: guided patch blending of its context (restyle.deflicker.patch_blend),
    or blind with its scene's atlas (deflicker_blind).  Chunked output is what the whole scene
    would give."""
    input:
        unpack(deflicker_chunk_inputs),
    output:
        directory(results("{video}", "deflickered", "{chunk}")),
    log:
        "logs/{video}/deflicker_chunk/{chunk}.log",
    benchmark:
        results("{video}", "benchmarks", "deflicker_chunk", "{chunk}.tsv")
    priority: 5
    conda:
        "../../envs/restyle.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=400 + 3 * len(range(*chunk_context(wc)))),
        disk_mb=lambda wc: output_mb(wc.video, config["deflicker"]["frames_per_job"], bytes_per_pixel=4),
        runtime=lambda wc: runtime_min(wc.video, len(range(*chunk_context(wc))), seconds_per_megapixel=30),
    params:
        chunk=deflicker_chunk_params,
        window=lambda wc: deflicker_window(wc.video),
        form=config["deflicker"]["form"],
        settings=remap_settings(),
        blind=config["deflicker"]["blind"],
    script:
        "../../scripts/deflicker_chunk.py"


rule measure_chunk:
    """A chunk's share of metrics.json: E_warp of its pairs of frames (the final frames, the
    input's and the frames before the deflicker) through flows of the input (a deflicker
    video's guide, or its flicker-invariant frames), and PSNR and sharpness of its frames
    against the per-frame stylization (a deflicker video: against its input)."""
    input:
        unpack(measure_chunk_inputs),
    output:
        directory(results("{video}", "measured_chunks", "{chunk}")),
    log:
        "logs/{video}/measure_chunk/{chunk}.log",
    benchmark:
        results("{video}", "benchmarks", "measure_chunk", "{chunk}.tsv")
    priority: 6
    conda:
        "../../envs/restyle.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=150),
        disk_mb=10,
        runtime=lambda wc: runtime_min(
            wc.video, config["deflicker"]["frames_per_job"], seconds_per_megapixel=2
        ),
    params:
        chunk=measure_chunk_params,
        flow_preset=config["flow"]["preset"],
    script:
        "../../scripts/measure_chunk.py"
