# Helpers shared by the stage rules: paths, job descriptions, resources.
# Input functions only; no rule lives here.
import json

from mibench_core.report import PERSPECTIVES

R = CFG["results_dir"]
TABLES = CFG["output"]["tables"]
REPORTS = CFG["output"]["reports"]
# Jobs run the library next to this Snakefile (the code the plan fingerprinted),
# with the environment's python (the venv's, or the conda env's). Its folder
# travels in $MIBENCH_ROOT (exported by the Snakefile), not in the command text:
# Snakemake reruns a job whose command or params changed, and a copied or moved
# checkout must rerun nothing.
MIBENCH = 'PYTHONPATH="$MIBENCH_ROOT" python -m mibench_core.cli'

STAGE_RESOURCES = {
    # threads, mem_mb, runtime (minutes), gpu
    "data": dict(threads=1, mem_mb=4000, runtime=20, gpu=0),
    "model": dict(threads=1, mem_mb=4000, runtime=120, gpu=0),
    "prior": dict(threads=1, mem_mb=4000, runtime=240, gpu=0),
    "attack": dict(threads=1, mem_mb=4000, runtime=240, gpu=0),
    "metric": dict(threads=1, mem_mb=4000, runtime=60, gpu=0),
    "report": dict(threads=1, mem_mb=2000, runtime=20, gpu=0),
}


def res(stage, key):
    """Resource of a stage: the config's resources.<stage>.<key> over our defaults."""
    return CFG["resources"].get(stage, {}).get(key, STAGE_RESOURCES[stage][key])


def job_json(aid):
    """The job's description (params.job): what it computes, without its label."""
    job = PLAN.nodes[aid].job(PLAN)
    del job["label"]
    return json.dumps(job, sort_keys=True)


class Name:
    """A label as a rule parameter that Snakemake neither records nor compares.

    Snakemake's params rerun trigger keeps only values of builtin types (others
    are "unrepresentable"), so a run renamed in the config reuses its artifact;
    the job still gets the label (``--label``) for its manifest.
    tests/test_workflow_reliability.py checks that a relabel reruns no artifact job."""

    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text


def job_label(aid):
    return Name(PLAN.nodes[aid].label)


def run_labels():
    """Attack id -> the labels of its table row, from this config (JSON): the aggregate's params.runs."""
    rows = {
        r.attack_id: dict(run=r.label, dataset=r.dataset, target=r.target, defense=r.defense, prior=r.prior,
                          attack=r.attack, replicate_seed=r.replicate_seed)
        for r in PLAN.runs
    }
    return json.dumps(rows, sort_keys=True)


RUN_LABELS = run_labels()


def node_inputs(wildcards):
    return PLAN.input_files(wildcards.aid)


def nodes_of(kind):
    return [n.id for n in PLAN.of_kind(kind)]


def metric_manifests():
    return [PLAN.path(m, "manifest.json") for run in PLAN.runs for m in run.metric_ids]


def per_sample_files():
    return [PLAN.path(m, "per_sample.safetensors") for run in PLAN.runs for m in run.metric_ids]


# Label -> run / prior lookups are dicts: input functions run once per job, and a
# linear scan there makes planning quadratic in the grid size (benchmarks/plan_time.py).
RUNS_BY_LABEL = {r.label: r for r in PLAN.runs}
PRIORS_BY_LABEL = {n.label: n for n in PLAN.of_kind("prior")}


def run_by_label(label):
    return RUNS_BY_LABEL[label]


def prior_by_label(label):
    return PRIORS_BY_LABEL[label]


def final_targets():
    # defense perspectives are always rendered: one whose data a config lacks says so
    # in its figure and table instead of failing
    return [
        f"{TABLES}/attacks.parquet",
        f"{TABLES}/attack_classes.parquet",
        f"{TABLES}/attacks_summary.parquet",
        f"{TABLES}/ranking.parquet",
        f"{REPORTS}/tables/attacks.md",
        f"{REPORTS}/tables/ranking.md",
        f"{REPORTS}/tables/ranking.tex",
        f"{TABLES}/claims.parquet",
        f"{REPORTS}/tables/claims.md",
        f"{REPORTS}/tables/claims.tex",
        f"{REPORTS}/tables/paper_attacks.md",
        f"{REPORTS}/tables/paper_attacks.tex",
        f"{REPORTS}/tables/paper_defenses.md",
        f"{REPORTS}/tables/paper_defenses.tex",
        f"{REPORTS}/figures/comparison.png",
        *[f"{REPORTS}/figures/reconstructions/{r.label}.png" for r in PLAN.runs],
        *[f"{REPORTS}/figures/priors/{n.label}.png" for n in PLAN.of_kind("prior")],
        f"{REPORTS}/figures/queries.png",
        *[f"{REPORTS}/figures/perspectives/{p}.png" for p in PERSPECTIVES],
        *[f"{REPORTS}/tables/perspectives/{p}.md" for p in PERSPECTIVES],
        f"{REPORTS}/tables/defense_matrix.md",
        f"{REPORTS}/tables/defense_matrix.tex",
        *membership_targets(),  # workflow/rules/membership.smk
        *split_targets(),  # the split-inference track (workflow/rules/split.smk)
    ]


wildcard_constraints:
    aid="[A-Za-z0-9_.-]+",
    label="[A-Za-z0-9_.-]+",
