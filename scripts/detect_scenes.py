"""detect_scenes: frames -> scenes.json (cut frame numbers)."""
import logging

from restyle import deflicker, io, scenes

with io.job_log(snakemake.log[0]):
    meta = io.read_json(snakemake.input.meta)
    frames = (io.read_frame(snakemake.input.frames, t) for t in range(meta["n_frames"]))
    if snakemake.params.flicker_invariant:
        frames = (deflicker.flicker_invariant(f, as_uint8=True) for f in frames)
    cuts = scenes.detect_cuts(frames, fps=meta["fps"], method=snakemake.params.detector,
                              threshold=snakemake.params.threshold, min_scene_len=snakemake.params.min_scene_len)
    logging.info("cuts at %s", cuts)
    io.write_json(snakemake.output[0], {"n_frames": meta["n_frames"], "cuts": cuts})
