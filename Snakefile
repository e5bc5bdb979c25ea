# tardiff: influence-guided diffusion for synthetic ICU time series.
# Usage: snakemake --cores all [--use-conda] [--configfile config/test.yaml]


from snakemake.utils import min_version

min_version("9.0")


# The default config applies only when no --configfile is given, so a user's config replaces it
# instead of being merged into it (a merge would keep the demo datasets).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/studies.smk"


rule all:
    default_target: True
    input:
        all_targets(),
