# restyle: flicker-free video restyling.  Wiring only: the stages live in workflow/rules/,
# the algorithms in the restyle/ package, and the rule scripts in scripts/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/scenes.smk"
include: "workflow/rules/flow.smk"
include: "workflow/rules/stylize.smk"
include: "workflow/rules/synthesize.smk"
include: "workflow/rules/blend.smk"
include: "workflow/rules/network.smk"
include: "workflow/rules/deflicker.smk"
include: "workflow/rules/encode.smk"
include: "workflow/rules/measure.smk"


rule all:
    default_target: True
    input:
        final_outputs(),


onsuccess:
    remove_leftover_intermediates()
