rule train_network:
    """propagation.method network: a network trained on one scene's keyframes and their styled
    versions, with temporal losses on pairs of its frames (restyle.network.train)."""
    input:
        unpack(network_training_inputs),
    output:
        results("{video}", "network", "{scene}.safetensors"),
    log:
        "logs/{video}/train_network/{scene}.log",
    benchmark:
        results("{video}", "benchmarks", "train_network", "{scene}.tsv")
    conda:
        "../../envs/restyle-network.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=100 + 50 * config["network"]["temporal_pairs"]),
        disk_mb=10,
        runtime=60,
    params:
        training=network_training_params,
        settings=preflight.network_settings(config),
    script:
        "../../scripts/train_network.py"


rule network_chunk:
    """propagation.method network: the scene's network on every frame of a chunk; keyframes
    come out as styled, and (keyframes: carry) what the network misses of them is carried
    along the flow onto the frames between them (restyle.network.carry_keyframe_residuals)."""
    input:
        frames=results("{video}", "frames"),
        weights=network_weights,
        keyframes=lambda wc: list(network_chunk_keyframes(wc).values()),
    output:
        directory(results("{video}", "network_frames", "{chunk}")),
    log:
        "logs/{video}/network_chunk/{chunk}.log",
    benchmark:
        results("{video}", "benchmarks", "network_chunk", "{chunk}.tsv")
    conda:
        "../../envs/restyle-network.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc: frame_mem_mb(wc.video, per_frame=500),
        disk_mb=lambda wc: output_mb(wc.video, config["deflicker"]["frames_per_job"], bytes_per_pixel=4),
        runtime=lambda wc: runtime_min(
            wc.video, config["deflicker"]["frames_per_job"], seconds_per_megapixel=2
        ),
    params:
        chunk=network_chunk_params,
        flow_preset=config["flow"]["preset"],
    script:
        "../../scripts/network_chunk.py"
