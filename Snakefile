# MIBench: model inversion attack and defense benchmark.
# Reads like a table of contents: config, validation, plan, stages, targets.
import os
import sys

sys.path.insert(0, workflow.basedir)  # a clone works without installing the package
os.environ["MIBENCH_ROOT"] = workflow.basedir  # envs/mibench.yaml installs the package from here

from snakemake.exceptions import WorkflowError

from mibench_core.config import ConfigError, validate
from mibench_core.plan import build
from mibench_core.preflight import PreflightError, check


configfile: f"{workflow.basedir}/config/config.yaml"


try:
    CFG = validate(config)
except ConfigError as exc:
    raise WorkflowError(f"invalid configuration: {exc}") from None
try:
    check(CFG)  # dataset roots and weight files the config names exist
except PreflightError as exc:
    raise WorkflowError(str(exc)) from None
PLAN = build(CFG)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/priors.smk"
include: "workflow/rules/attacks.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/split.smk"


rule all:
    input:
        final_targets(),
    default_target: True
