# tardiff: influence-guided diffusion for synthetic ICU time series.
# Usage: snakemake --cores all [--use-conda] [--configfile config/test.yaml]


from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/generate.smk"


rule all:
    input:
        all_targets(),
    default_target: True
