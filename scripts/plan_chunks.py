"""plan_chunks: scenes.json, or a restyled video's keyframes.json -> chunks.json (the
deflicker stage's jobs; restyle.chunks)."""
from restyle import chunks, io

with io.job_log(snakemake.log[0]):
    frames_per_job = snakemake.params.frames_per_job
    if "plan" in snakemake.input.keys():
        result = chunks.plan_for_restyled(io.read_json(snakemake.input.plan), frames_per_job)
    else:
        scenes = io.read_json(snakemake.input.scenes)
        result = chunks.plan(scenes["n_frames"], scenes["cuts"], frames_per_job)
    io.write_json(snakemake.output[0], result)
