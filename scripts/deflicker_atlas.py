"""deflicker_atlas: the frames of one scene -> atlas/<scene>.npy, its colour maps onto the
scene's consistent reference (restyle.deflicker.shot_colour_maps)."""
from restyle import deflicker, io

with io.job_log(snakemake.log[0]):
    params = snakemake.params
    start, end = params.frames
    frames = io.LazyFrames([f"{snakemake.input.frames}/{io.frame_name(t)}" for t in range(start, end)], cache=2)
    maps = deflicker.shot_colour_maps(frames, blind=deflicker.BlindSettings(**params.blind),
                                      flow_preset=params.settings["flow_preset"])
    io.save_array(snakemake.output[0], maps)
