# MIBench: model inversion attack and defense benchmark.
# Reads like a table of contents: config, validation, plan, stages, targets.
import os
import sys

sys.path.insert(0, workflow.basedir)  # a clone works without installing the package
# jobs find the package here (workflow/rules/common.smk), and envs/mibench.yaml installs it from here
os.environ["MIBENCH_ROOT"] = workflow.basedir

from snakemake.exceptions import WorkflowError

from mibench_core import runlock
from mibench_core.config import ConfigError, checked, load_yaml
from mibench_core.plan import build
from mibench_core.runtime import job_environment

job_environment(os.environ)  # allocator settings every job inherits (mibench_core/runtime.py)

if workflow.is_main_process:  # not in the jobs Snakemake spawns (Slurm nodes, subprocesses)
    # a lock left by a killed run is cleared here, with a notice; a live run's is kept
    _notice = runlock.claim()
    if _notice:
        print(_notice, file=sys.stderr)


try:  # Snakemake's own reading of a broken file names neither the file nor the line
    load_yaml(f"{workflow.basedir}/config/config.yaml")
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


configfile: f"{workflow.basedir}/config/config.yaml"


try:  # validation, then the preflight (datasets, priors and files can do what the config asks)
    CFG = checked(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None
PLAN = build(CFG)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/views.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/priors.smk"
include: "workflow/rules/attacks.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/membership.smk"
include: "workflow/rules/split.smk"


rule all:
    input:
        final_targets(),
    default_target: True
