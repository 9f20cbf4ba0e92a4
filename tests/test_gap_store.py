"""A gap's file layout: chains in propagation order, and what is written is what is read."""

import numpy as np
import pytest

from restyle import gap_store


def test_chains_run_from_their_keyframe_and_link_to_the_previous_frame():
    assert gap_store.chain(10, 14, "fwd") == [10, 11, 12, 13, 14]
    assert gap_store.chain(10, 14, "bwd") == [14, 13, 12, 11, 10]
    assert gap_store.inbetweens(10, 14, "bwd") == [13, 12, 11]
    assert gap_store.link("fwd") == "b" and gap_store.link("bwd") == "f"
    with pytest.raises(ValueError, match="direction"):
        gap_store.chain(0, 4, "sideways")


def test_chain_links_read_the_flows_written_for_each_pair(tmp_path):
    start, end = 3, 6
    rng = np.random.default_rng(0)
    written = {}
    for t in range(start, end):
        forward, backward = (rng.standard_normal((4, 5, 2)).astype(np.float32) for _ in range(2))
        occluded = rng.random((4, 5)) > 0.5
        gap_store.write_flow_pair(tmp_path, t, forward, backward, occluded, ~occluded)
        written[("f", t)], written[("b", t + 1)] = (forward, occluded), (backward, ~occluded)
    for direction in gap_store.DIRECTIONS:
        links = list(gap_store.chain_links(tmp_path, start, end, direction))
        assert [t for t, _, _ in links] == gap_store.inbetweens(start, end, direction)
        for t, flow, occluded in links:
            expected_flow, expected_occluded = written[(gap_store.link(direction), t)]
            np.testing.assert_array_equal(flow, expected_flow)
            np.testing.assert_array_equal(occluded, expected_occluded)


def test_a_pass_reads_back_what_was_written(tmp_path):
    (tmp_path / "bwd").mkdir()
    styled = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    error = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    gap_store.write_pass(tmp_path, "bwd", 7, styled, error)
    back_styled, back_error = gap_store.read_pass(tmp_path, "bwd", 7)
    np.testing.assert_array_equal(back_styled, styled)
    np.testing.assert_array_equal(back_error, error)
    assert gap_store.styled_path(tmp_path, "bwd", 7).name == "styled_00007.png"
