"""train_network: a scene's keyframes, their styled versions and its frames ->
network/<scene>.safetensors (restyle.network)."""
import logging

from restyle import io, network

with io.job_log(snakemake.log[0]):
    training, inputs = snakemake.params.training, snakemake.input
    settings = network.NetworkSettings(**snakemake.params.settings)
    start, end = training["scene"]
    frames = io.LazyFrames([f"{inputs.frames}/{io.frame_name(t)}" for t in range(start, end)])
    keyframes = [io.read_frame(inputs.frames, k) for k in training["keyframes"]]
    styled = [io.read_image(path) for path in inputs.keyframes]
    model, report = network.train(keyframes, styled, frames, settings, threads=snakemake.threads,
                                  progress=lambda step, losses: logging.info("step %d: %s", step, losses))
    logging.info("trained in %.1f s: %s", report.seconds, report.losses)
    network.save(snakemake.output[0], model, settings, report)
