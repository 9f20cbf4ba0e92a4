"""plan_keyframes: scenes.json -> keyframes.json (keyframes and gaps)."""
from restyle import io, keyframes

io.log_to(snakemake.log[0])
scenes = io.read_json(snakemake.input.scenes)
manifest = keyframes.plan(scenes["n_frames"], scenes["cuts"], snakemake.params.interval,
                          tuple(snakemake.params.painted))
io.write_json(snakemake.output[0], manifest)
