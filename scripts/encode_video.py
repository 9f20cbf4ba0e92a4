"""encode_video / encode_compare / encode_deflickered: the final frames (+ source audio) -> mp4."""
import numpy as np

from restyle import assemble, io, video

with io.job_log(snakemake.log[0]):
    meta = io.read_json(snakemake.input.meta)
    # The path of every final frame, in order (common.smk's final_frame_paths).
    frames = assemble.read_images(snakemake.params.paths)
    if snakemake.rule == "encode_compare":
        frames = (np.hstack([io.read_frame(snakemake.input.frames, t), styled]) for t, styled in enumerate(frames))
    video.write_video(snakemake.output[0], frames, fps=meta["fps_fraction"], audio_source=snakemake.input.source,
                      crf=snakemake.params.crf)
