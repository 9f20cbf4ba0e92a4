"""record_keyframe: a keyframe through the diffusion model with the base settings ->
diffusion/<frame>.png and its cross-frame attention record diffusion/<frame>.safetensors."""
from restyle import io
from restyle.diffusion import AttentionRecord
from restyle.stylize import make_stylizer

with io.job_log(snakemake.log[0]):
    frame_index = int(snakemake.wildcards.frame)
    stylizer = make_stylizer("diffusion", **snakemake.params.stylizer, torch_threads=snakemake.threads)
    image, record = stylizer.record_reference(io.read_frame(snakemake.input.frames, frame_index), frame_index,
                                              references=list(snakemake.input.references))
    io.write_image(snakemake.output.image, image)
    # Without cross-frame attention there is nothing to record; an empty record keeps the DAG fixed.
    (record if record is not None else AttentionRecord()).save(snakemake.output.record)
