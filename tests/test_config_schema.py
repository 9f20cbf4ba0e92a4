"""The config schema is the one home of the workflow's defaults and choices."""
import re
from pathlib import Path

import pytest

from restyle import flow, preflight, propagate, scenes, stylize, video

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def schema():
    return preflight.load_schema(REPO)


def _enum(schema, dotted):
    node = schema
    for part in dotted.split("."):
        node = node["properties"][part]
    return node["enum"]


@pytest.mark.parametrize("key, library_names", [
    ("stylizer.backend", stylize.BACKENDS),
    ("stylizer.look", stylize.LOOKS),
    ("flow.preset", flow.DIS_PRESETS),
    ("scenes.detector", scenes.DETECTORS),
    ("propagation.output", propagate.PATCH_OUTPUTS),
    ("decode_errors", video.DECODE_ERROR_MODES),
    ("propagation.guide_weights", propagate.GUIDE_NAMES),
])
def test_every_choice_the_schema_offers_is_one_the_library_has(schema, key, library_names):
    if key.endswith("guide_weights"):
        node = schema["properties"]["propagation"]["properties"]["guide_weights"]
        offered = list(node["properties"])
    else:
        offered = _enum(schema, key)
    assert sorted(offered) == sorted(library_names)


def test_diffusion_choices_match_the_diffusion_package(schema):
    pytest.importorskip("torch")
    from restyle.diffusion.loading import SCHEDULERS
    from restyle.diffusion.stylizer import CONTROLS

    assert sorted(_enum(schema, "stylizer.scheduler")) == sorted(SCHEDULERS)
    assert sorted(_enum(schema, "stylizer.control")) == sorted(CONTROLS)


def test_defaults_fill_every_section_and_keep_what_the_user_set(schema):
    config = preflight.fill_defaults({"videos": {"a": "a.mp4"}, "propagation": {"patch_size": 7}}, schema)
    assert config["propagation"]["patch_size"] == 7
    assert config["propagation"]["guide_weights"] == {"color": 6.0, "edge": 0.5, "positional": 2.0, "temporal": 0.5}
    assert config["keyframes"] == {"interval": 10, "painted_dir": "painted/{video}", "extra": {}}
    assert config["stylizer"]["steps"] == 20 and config["stylizer"]["deflicker_steps"] == []
    assert "model" not in config["stylizer"]  # no default: the diffusion backend requires one
    again = preflight.fill_defaults({}, schema)
    again["keyframes"]["extra"]["x"] = [1]
    assert preflight.fill_defaults({}, schema)["keyframes"]["extra"] == {}  # defaults are copies


def test_a_valid_config_is_checked_once_and_comes_back_filled(tmp_path):
    config = {"videos": {"a": "a.mp4"}}
    assert preflight.check_config(config, REPO) == []
    assert config["blend"]["grad_weight"] == [2.5, 0.5, 0.5] and config["decode_errors"] == "fail"


def test_an_unknown_choice_names_the_key_the_value_and_the_choices():
    errors = preflight.check_config({"videos": {"a": "a.mp4"}, "stylizer": {"look": "sepia"}}, REPO)
    assert errors == ["config.yaml: stylizer.look: unknown built-in look 'sepia'; use one of "
                      "oil, watercolor, pencil, cartoon, detail, strokes (fix it in config.yaml)"]


def test_rules_and_scripts_supply_no_default_of_their_own():
    """A fallback such as ``config.get("width", None)`` would be a second home for a default."""
    sources = [*REPO.glob("workflow/rules/*.smk"), *REPO.glob("scripts/*.py"), REPO / "Snakefile"]
    fallbacks = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
                 for path in sources for number, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"(config|params|stylizer|deflicker)[\]\w.\"']*\.get\([^)]*,", line)]
    assert fallbacks == []
