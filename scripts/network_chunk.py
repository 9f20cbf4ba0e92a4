"""network_chunk: a scene's trained network on every frame of a chunk ->
network_frames/<chunk>/<t>.png (keyframes come out as styled; restyle.network)."""
import functools

from restyle import chunks, io, network

with io.job_log(snakemake.log[0]):
    chunk, inputs = snakemake.params.chunk, snakemake.input
    start, end = chunks.parse_chunk_name(snakemake.wildcards.chunk)
    model, settings = network.load(inputs.weights)

    def render(t):
        return network.stylize_frame(model, io.read_frame(inputs.frames, t), settings.guides, threads=snakemake.threads)

    @functools.cache
    def key_residual(k):
        return network.residual(io.read_image(chunk["keyframes"][k]), render(k))

    with io.staged_directory(snakemake.output[0]) as out:
        for t in range(start, end):
            if t in chunk["keyframes"]:
                styled = io.read_image(chunk["keyframes"][t])
            elif t in chunk["between"]:
                neighbours = [(w, io.read_frame(inputs.frames, k), key_residual(k))
                              for k, w in network.keyframe_weights(t, *chunk["between"][t])]
                styled = network.carry_keyframe_residuals(io.read_frame(inputs.frames, t), render(t), neighbours,
                                                          snakemake.params.flow_preset)
            else:
                styled = render(t)
            io.write_image(out / io.frame_name(t), styled)
