"""extract_frames: video -> frames/%05d.png + meta.json."""
from restyle import io, video

with io.job_log(snakemake.log[0]):
    source = snakemake.input.video
    # fail: damaged frames stop the job, naming them; repair: the last good frame stands in for
    # them (a "restyle: warning:" line on stderr and in the log says which).
    probe, frames = video.read_video(source, snakemake.params.width, snakemake.params.decode_errors)
    count = 0
    size = None
    with io.staged_directory(snakemake.output.frames) as folder:
        for index, frame in enumerate(frames):
            io.write_image(folder / io.frame_name(index), frame)
            count, size = index + 1, frame.shape
    if count == 0:
        raise video.VideoError(f"{source}: no frame could be decoded; re-encode it (e.g. ffmpeg -i in out.mp4)")
    meta = dict(probe, n_frames=count, height=size[0], width=size[1], source=str(source),
                source_width=probe["width"], source_height=probe["height"], source_n_frames=probe["n_frames"])
    io.write_json(snakemake.output.meta, meta)
