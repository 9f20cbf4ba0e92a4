"""encode_video / encode_compare: assembled frames (+ source audio) -> mp4."""
import numpy as np

from restyle import assemble, io, video

with io.job_log(snakemake.log[0]):
    manifest = io.read_json(snakemake.input.plan)
    meta = io.read_json(snakemake.input.meta)
    paths = assemble.restyled_frame_paths(manifest, snakemake.input.keyframes, snakemake.input.gaps)
    frames = assemble.read_images(paths)
    if snakemake.rule == "encode_compare":
        frames = (np.hstack([io.read_frame(snakemake.input.frames, t), styled]) for t, styled in enumerate(frames))
    video.write_video(snakemake.output[0], frames, fps=meta["fps_fraction"], audio_source=snakemake.input.source,
                      crf=snakemake.params.crf)
