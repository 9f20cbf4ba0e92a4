"""stylize_keyframe: one keyframe -> its stylized look (a painted file wins)."""
import logging

from restyle import io
from restyle.stylize import make_stylizer

io.log_to(snakemake.log[0])
frame_index = int(snakemake.wildcards.frame)
params = snakemake.params
if snakemake.input.painted:
    logging.info("using the painted keyframe %s", snakemake.input.painted[0])
    styled = io.read_image(snakemake.input.painted[0])
elif params.backend == "diffusion" and params.scene_batch:
    styled = io.read_image(f"{snakemake.input.diffusion[0]}/{frame_index:05d}.png")  # from stylize_scene
elif params.backend == "diffusion" and params.override is None:
    styled = io.read_image(snakemake.input.diffusion[0])  # the base run of record_keyframe
elif params.backend == "diffusion":
    stylizer = make_stylizer("diffusion", **params.stylizer, overrides={frame_index: params.override},
                             torch_threads=snakemake.threads)
    styled, _ = stylizer.stylize(io.read_frame(snakemake.input.frames, frame_index), frame_index,
                                 references=list(snakemake.input.diffusion))
else:
    stylizer = make_stylizer(params.backend, **params.stylizer)
    styled = stylizer(io.read_frame(snakemake.input.frames, frame_index), frame_index)
io.write_image(snakemake.output[0], styled)
