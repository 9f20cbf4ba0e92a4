"""stylize_keyframe: one keyframe -> its stylized look (a painted file wins)."""
import logging

from restyle import io
from restyle.stylize import make_stylizer

io.log_to(snakemake.log[0])
frame_index = int(snakemake.wildcards.frame)
if snakemake.input.painted:
    logging.info("using the painted keyframe %s", snakemake.input.painted[0])
    styled = io.read_image(snakemake.input.painted[0])
else:
    options = dict(snakemake.params.stylizer)
    stylizer = make_stylizer(options.pop("backend"), **options)
    styled = stylizer(io.read_frame(snakemake.input.frames, frame_index), frame_index)
io.write_image(snakemake.output[0], styled)
