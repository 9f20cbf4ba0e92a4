"""synthesize_gap: a keyframe's look carried through its gap -> styled_<t>.png, error_<t>.npy."""
from restyle import io
from restyle.keyframes import parse_gap_name
from restyle.propagate import propagate_frame

io.log_to(snakemake.log[0])
start, end = parse_gap_name(snakemake.wildcards.gap)
forward = snakemake.wildcards.direction == "fwd"
source = start if forward else end
frames = snakemake.input.frames
styled_keyframe = io.read_image(snakemake.input.keyframe)
keyframe = io.read_frame(frames, source)
order = range(start + 1, end) if forward else range(end - 1, start, -1)
with io.staged_directory(snakemake.output[0]) as out:
    for t in order:
        position = io.load_array(f"{snakemake.input.guides}/pos_{t:05d}.npy")
        styled, error = propagate_frame(styled_keyframe, keyframe, io.read_frame(frames, t), position,
                                        patch_size=snakemake.params.patch_size)
        io.write_image(out / f"styled_{t:05d}.png", styled)
        io.save_array(out / f"error_{t:05d}.npy", error)
