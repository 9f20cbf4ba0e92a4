"""deflicker_chunk: a chunk's context (processed frames, guide; the scene's colour maps when blind)
-> deflickered/<chunk>/<t>.png for the chunk's own frames."""
from restyle import deflicker, io

with io.job_log(snakemake.log[0]):
    params, chunk = snakemake.params, snakemake.params.chunk
    (lo, hi), (start, end) = chunk["context"], chunk["targets"]
    # Decoded as the blend walks the context: a job holds a few frames, not its chunk.
    frames = io.LazyFrames(chunk["paths"])
    if chunk["blind"]:  # read once each, into the refinement's own window of filtered frames
        frames.cache = 2
    else:
        frames.cache = deflicker.frames_held(params.window, params.form, frames[0].shape, len(frames))
    targets = list(range(start - lo, end - lo))
    settings = deflicker.RemapSettings(**params.settings)
    if chunk["blind"]:
        scene_start = chunk["scene"][0]
        maps = io.load_array(snakemake.input.atlas)[lo - scene_start:hi - scene_start]
        blind = deflicker.BlindSettings(**params.blind)
        out_frames = deflicker.iter_deflicker_blind(frames, maps, blind=blind, settings=settings, targets=targets,
                                                    first_index=lo, threads=snakemake.threads)
    else:
        guide = io.LazyFrames([f"{snakemake.input.guide[0]}/{io.frame_name(t)}" for t in range(lo, hi)],
                              cache=frames.cache)
        out_frames = deflicker.iter_patch_blend(frames, guide, window=params.window, form=params.form,
                                                settings=settings, targets=targets, first_index=lo,
                                                threads=snakemake.threads)
    # Written as each frame is done (in order), not held until the chunk is.
    with io.staged_directory(snakemake.output[0]) as out:
        for t, frame in out_frames:
            io.write_image(out / io.frame_name(lo + t), frame)
