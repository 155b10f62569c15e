# Split (collaborative) inference track: reconstructions from intermediate features, their scores,
# table and figures (mibench_core/split/). `snakemake split_inference` builds only this track.
from mibench_core.split.plan import final_targets as split_final_targets
from mibench_core.split.plan import group_by_label as split_group_by_label
from mibench_core.split.plan import row_labels as split_row_labels

SPLIT_GROUPS = split_group_by_label(PLAN)
# Split id -> the labels of its table row, from this config (JSON): the aggregate's params.runs.
SPLIT_LABELS = json.dumps(split_row_labels(PLAN), sort_keys=True)


def split_targets():
    return split_final_targets(PLAN, TABLES, REPORTS)


def split_grid_runs(wildcards):
    """The split runs of one trained target at one split point, in the config's technique order."""
    group = SPLIT_GROUPS[wildcards.group]
    return [nid for (_, point), nid in group.runs.items() if point == wildcards.point]


def split_grid_inputs(wildcards):
    ids = split_grid_runs(wildcards)
    files = [PLAN.path(nid) for nid in ids] + [PLAN.path(nid, "manifest.json") for nid in ids]
    return files + [PLAN.path(PLAN.nodes[ids[0]].inputs["data"])]


rule split_inference:
    input:
        split_targets(),
    localrule: True
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),


rule run_split_attack:
    input:
        node_inputs,
    output:
        recon=f"{R}/split/{{aid}}/recon.safetensors",
        manifest=f"{R}/split/{{aid}}/manifest.json",
    params:
        job=lambda w: job_json(w.aid),
        label=lambda w: job_label(w.aid),
    log:
        f"{R}/logs/split/{{aid}}.log",
    benchmark:
        f"{R}/benchmarks/split/{{aid}}.tsv"
    threads: res("attack", "threads")
    resources:
        mem_mb=res("attack", "mem_mb"),
        runtime=res("attack", "runtime"),
        gpu=res("attack", "gpu"),
    conda:
        "../../envs/mibench.yaml"
    shell:
        "MIBENCH_THREADS={threads} " + MIBENCH + " run --job {params.job:q} --label {params.label:q} > {log} 2>&1"


rule score_split_attacks:
    input:
        node_inputs,
    output:
        metrics=f"{R}/split_metrics/{{aid}}/metrics.json",
        manifest=f"{R}/split_metrics/{{aid}}/manifest.json",
    params:
        job=lambda w: job_json(w.aid),
        label=lambda w: job_label(w.aid),
    log:
        f"{R}/logs/split_metrics/{{aid}}.log",
    benchmark:
        f"{R}/benchmarks/split_metrics/{{aid}}.tsv"
    threads: res("metric", "threads")
    resources:
        mem_mb=res("metric", "mem_mb"),
        runtime=res("metric", "runtime"),
        gpu=res("metric", "gpu"),
    conda:
        "../../envs/mibench.yaml"
    shell:
        "MIBENCH_THREADS={threads} " + MIBENCH + " run --job {params.job:q} --label {params.label:q} > {log} 2>&1"


rule aggregate_split_results:
    input:
        [PLAN.path(g.metric_id, "manifest.json") for g in SPLIT_GROUPS.values()],
    output:
        table=f"{TABLES}/split_inference.parquet",
    params:
        # row labels from the config (a plain value Snakemake compares: a relabel reruns this rule only)
        runs=SPLIT_LABELS,
        call="mibench_core.split.report:write_table",
        args=lambda w, input, output: [[os.path.dirname(p) for p in input], output.table, json.loads(SPLIT_LABELS)],
    log:
        f"{R}/logs/report/aggregate_split_results.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"


rule render_split_table:
    input:
        table=f"{TABLES}/split_inference.parquet",
    output:
        markdown=report(
            f"{REPORTS}/tables/split_inference.md",
            caption="../report/split_table.rst",
            category="8. Split inference",
            subcategory="Tables",
        ),
    params:
        call="mibench_core.split.report:markdown_table",
        args=lambda w, input, output: [input.table, output.markdown],
    log:
        f"{R}/logs/report/render_split_table.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"


rule plot_split_depth:
    input:
        table=f"{TABLES}/split_inference.parquet",
    output:
        figure=report(
            f"{REPORTS}/figures/split/depth.png",
            caption="../report/split_depth.rst",
            category="8. Split inference",
            subcategory="Figures",
        ),
    params:
        call="mibench_core.split.report:depth_figure",
        args=lambda w, input, output: [input.table, output.figure],
    log:
        f"{R}/logs/report/plot_split_depth.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"


rule plot_split_grid:
    input:
        runs=split_grid_inputs,
        table=f"{TABLES}/split_inference.parquet",
    output:
        figure=report(
            f"{REPORTS}/figures/split/{{group}}/{{point}}.png",
            caption="../report/split_grid.rst",
            category="8. Split inference",
            subcategory="Reconstructions",
        ),
    params:
        call="mibench_core.split.report:reconstruction_grid",
        args=lambda w, input, output: [
            [PLAN.nodes[nid].directory(R) for nid in split_grid_runs(w)],
            os.path.dirname(input.runs[-1]),
            input.table,
            output.figure,
            w.group,
        ],
    wildcard_constraints:
        group="[A-Za-z0-9_.-]+",
        point="[A-Za-z0-9_]+",
    log:
        f"{R}/logs/report/split/{{group}}.{{point}}.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"
