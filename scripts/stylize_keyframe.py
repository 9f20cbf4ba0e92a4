"""stylize_keyframe: one keyframe -> its stylized look (how: restyle.stylize.keyframe_source)."""
import logging

from restyle import io, stylize

with io.job_log(snakemake.log[0]):
    frame_index = int(snakemake.wildcards.frame)
    params, inputs = snakemake.params, snakemake.input
    source = stylize.keyframe_source(params.backend, bool(inputs.painted), params.scene_batch, params.override)
    logging.info("keyframe %d: %s", frame_index, source)
    if source == stylize.PAINTED:
        styled = io.read_image(inputs.painted[0])
    elif source == stylize.SCENE_BATCH:
        styled = io.read_image(f"{inputs.diffusion[0]}/{frame_index:05d}.png")  # from stylize_scene
    elif source == stylize.BASE_RECORD:
        styled = io.read_image(inputs.diffusion[0])  # the base run of record_keyframe
    elif source == stylize.OVERRIDE:
        stylizer = stylize.make_stylizer("diffusion", **params.stylizer, overrides={frame_index: params.override},
                                         torch_threads=snakemake.threads)
        styled, _ = stylizer.stylize(io.read_frame(inputs.frames, frame_index), frame_index,
                                     references=list(inputs.diffusion))
    else:
        styled = stylize.make_stylizer(params.backend, **params.stylizer)(io.read_frame(inputs.frames, frame_index),
                                                                         frame_index)
    io.write_image(snakemake.output[0], styled)
