"""measure_chunk: a chunk's final frames, the frames before the deflicker and the input ->
measured_chunks/<chunk>/ (its E_warp pairs and fidelity; see restyle.evaluate)."""
import functools

from restyle import gap_store, io
from restyle.deflicker import flicker_invariant
from restyle.evaluate import measure_frames
from restyle.flow import consecutive_flows
from restyle.stylize import make_stylizer

with io.job_log(snakemake.log[0]):
    chunk = snakemake.params.chunk
    start, end = chunk["frames"]
    frames = range(start, end)
    inputs = snakemake.input

    @functools.lru_cache(maxsize=4)  # read for the fidelity and for the flows alike
    def original(t):
        return io.read_frame(inputs.frames, t)

    def flow_frame(t):
        """What E_warp's flows are computed on: the input, a deflicker video's guide, or the
        flicker-invariant form of its input (blind)."""
        if chunk["flows_on"] == "guide":
            return io.read_frame(inputs.guide[0], t)
        if chunk["flows_on"] == "flicker_invariant":
            return flicker_invariant(original(t), as_uint8=True)
        return original(t)

    final = dict(zip(frames, chunk["final"]))
    before = dict(zip(frames, chunk["before"]))
    look = chunk["reference_look"]
    restyled = chunk["flows_on"] == "input"
    measurement = measure_frames(
        frames, restyled=lambda t: io.read_image(final[t]), original=original,
        flows=consecutive_flows(map(flow_frame, frames), snakemake.params.flow_preset),
        per_frame_stylizer=make_stylizer("builtin", look=look) if look else None,
        keyframes=set(chunk["not_compared"]),
        more={"before_deflicker": lambda t: io.read_image(before[t])} if before else None,
        reference=None if restyled else original,
    )
    with io.staged_directory(snakemake.output[0]) as out:
        io.write_json(gap_store.measurement_path(out), measurement)
