"""stylize_chunk: the stylizer on every frame of a chunk -> stylized/<chunk>/<t>.png
(propagation.method per_frame; a painted frame stands for itself)."""
from restyle import chunks, io, stylize

with io.job_log(snakemake.log[0]):
    params = snakemake.params
    start, end = chunks.parse_chunk_name(snakemake.wildcards.chunk)
    stylizer = stylize.make_stylizer(params.backend, **params.stylizer)
    with io.staged_directory(snakemake.output[0]) as out:
        for t in range(start, end):
            painted = params.painted.get(t)
            styled = io.read_image(painted) if painted else stylizer(io.read_frame(snakemake.input.frames, t), t)
            io.write_image(out / io.frame_name(t), styled)
