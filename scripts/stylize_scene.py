"""stylize_scene: one scene's keyframes through the diffusion model in one batch with latent
deflickering -> diffusion_scenes/<scene>/<frame>.png."""
from restyle import io
from restyle.keyframes import scene_keyframes
from restyle.stylize import make_stylizer

with io.job_log(snakemake.log[0]):
    plan = io.read_json(snakemake.input.plan)
    keys = scene_keyframes(plan, int(snakemake.wildcards.scene))
    stylizer = make_stylizer("diffusion", **snakemake.params.stylizer, overrides=snakemake.params.overrides,
                             torch_threads=snakemake.threads)
    images = stylizer.stylize_batch([io.read_frame(snakemake.input.frames, k) for k in keys], keys,
                                    **snakemake.params.deflicker, flow_preset=snakemake.params.flow_preset)
    with io.staged_directory(snakemake.output[0]) as out:
        for key, image in zip(keys, images):
            io.write_image(out / io.frame_name(key), image)
