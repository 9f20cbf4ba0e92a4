"""restyle.assemble: which file each frame of the restyled video comes from."""

from restyle.assemble import restyled_frame_paths
from restyle.keyframes import plan


def test_restyled_frame_paths_interleave_keyframes_and_gaps():
    manifest = plan(8, [], 4)  # keyframes 0, 4, 7
    paths = restyled_frame_paths(manifest, ["k0.png", "k4.png", "k7.png"], ["g1", "g2"])
    assert [str(p) for p in paths] == ["k0.png", "g1/00001.png", "g1/00002.png", "g1/00003.png", "k4.png",
                                       "g2/00005.png", "g2/00006.png", "k7.png"]
