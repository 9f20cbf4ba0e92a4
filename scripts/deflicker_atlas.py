"""deflicker_atlas: the frames of one scene -> atlas/<scene>.npy (restyle.deflicker.shot_atlas)."""
from restyle import deflicker, io

with io.job_log(snakemake.log[0]):
    params = snakemake.params
    start, end = params.frames
    frames = [io.read_frame(snakemake.input.frames, t) for t in range(start, end)]
    atlas = deflicker.shot_atlas(frames, blind=deflicker.BlindSettings(**params.blind),
                                 settings=deflicker.RemapSettings(**params.settings), first_index=start,
                                 threads=snakemake.threads)
    io.save_array(snakemake.output[0], atlas)
