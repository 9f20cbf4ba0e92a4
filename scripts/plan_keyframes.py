"""plan_keyframes: scenes.json -> keyframes.json (keyframes and gaps)."""
from restyle import io, keyframes, preflight

with io.job_log(snakemake.log[0]):
    scenes = io.read_json(snakemake.input.scenes)
    manifest = keyframes.plan(scenes["n_frames"], scenes["cuts"], snakemake.params.interval,
                              tuple(snakemake.params.extra))
    errors = preflight.check_painted_are_keyframes(preflight.painted_files(snakemake.params.painted_dir),
                                                   manifest["keyframes"], snakemake.wildcards.video)
    if errors:
        raise SystemExit(errors[0])
    io.write_json(snakemake.output[0], manifest)
