# Membership inference on the same targets: shadow / reference models, scenarios, attacks,
# evaluation, and their report (mibench_core/membership). Nothing here when the config has no
# enabled `membership:` section.

MIA_EVALS = PLAN.of_kind("mia_eval")
MIA_EVALS_BY_LABEL = {n.label.rsplit(".", 1)[0]: n for n in MIA_EVALS}
# Attack run id -> its row label, from this config (JSON). A plain value, so Snakemake compares it:
# renaming a run reruns the report rules that name runs, not the artifacts.
MIA_LABELS = json.dumps({n.id: n.label for n in PLAN.of_kind("mia")}, sort_keys=True)


def membership_targets():
    if not MIA_EVALS:
        return []
    return [
        f"{TABLES}/membership.parquet",
        f"{REPORTS}/tables/membership.md",
        *[f"{REPORTS}/figures/membership/roc/{label}.png" for label in MIA_EVALS_BY_LABEL],
        *[f"{REPORTS}/figures/membership/heatmap/{label}.png" for label in MIA_EVALS_BY_LABEL],
        f"{TABLES}/defense_threats.parquet",
        f"{REPORTS}/tables/defense_threats.md",
        f"{REPORTS}/tables/defense_threats.tex",
        f"{REPORTS}/figures/defense_threats.png",
    ]


rule train_shadow:
    input:
        node_inputs,
    output:
        outputs=f"{R}/shadows/{{aid}}/outputs.safetensors",
        manifest=f"{R}/shadows/{{aid}}/manifest.json",
    params:
        job=lambda w: job_json(w.aid),
        label=lambda w: job_label(w.aid),
    log:
        f"{R}/logs/shadows/{{aid}}.log",
    benchmark:
        f"{R}/benchmarks/shadows/{{aid}}.tsv"
    threads: res("model", "threads")
    resources:
        mem_mb=res("model", "mem_mb"),
        runtime=res("model", "runtime"),
        gpu=res("model", "gpu"),
    conda:
        "../../envs/mibench.yaml"
    shell:
        "MIBENCH_THREADS={threads} " + MIBENCH + " run --job {params.job:q} --label {params.label:q} > {log} 2>&1"


rule make_scenarios:
    input:
        node_inputs,
    output:
        scenarios=f"{R}/scenarios/{{aid}}/scenarios.safetensors",
        manifest=f"{R}/scenarios/{{aid}}/manifest.json",
    params:
        job=lambda w: job_json(w.aid),
        label=lambda w: job_label(w.aid),
    log:
        f"{R}/logs/scenarios/{{aid}}.log",
    benchmark:
        f"{R}/benchmarks/scenarios/{{aid}}.tsv"
    threads: res("metric", "threads")
    resources:
        mem_mb=res("metric", "mem_mb"),
        runtime=res("metric", "runtime"),
        gpu=res("metric", "gpu"),
    conda:
        "../../envs/mibench.yaml"
    shell:
        "MIBENCH_THREADS={threads} " + MIBENCH + " run --job {params.job:q} --label {params.label:q} > {log} 2>&1"


rule make_mia_inputs:
    input:
        node_inputs,
    output:
        inputs=f"{R}/mia_inputs/{{aid}}/inputs.safetensors",
        manifest=f"{R}/mia_inputs/{{aid}}/manifest.json",
    params:
        job=lambda w: job_json(w.aid),
        label=lambda w: job_label(w.aid),
    log:
        f"{R}/logs/mia_inputs/{{aid}}.log",
    benchmark:
        f"{R}/benchmarks/mia_inputs/{{aid}}.tsv"
    threads: res("metric", "threads")
    resources:
        mem_mb=res("metric", "mem_mb"),
        runtime=res("metric", "runtime"),
        gpu=res("metric", "gpu"),
    conda:
        "../../envs/mibench.yaml"
    shell:
        "MIBENCH_THREADS={threads} " + MIBENCH + " run --job {params.job:q} --label {params.label:q} > {log} 2>&1"


rule run_mia:
    input:
        node_inputs,
    output:
        scores=f"{R}/mia/{{aid}}/scores.safetensors",
        manifest=f"{R}/mia/{{aid}}/manifest.json",
    params:
        job=lambda w: job_json(w.aid),
        label=lambda w: job_label(w.aid),
    log:
        f"{R}/logs/mia/{{aid}}.log",
    benchmark:
        f"{R}/benchmarks/mia/{{aid}}.tsv"
    threads: res("attack", "threads")
    resources:
        mem_mb=res("attack", "mem_mb"),
        runtime=res("attack", "runtime"),
        gpu=res("attack", "gpu"),
    conda:
        "../../envs/mibench.yaml"
    shell:
        "MIBENCH_THREADS={threads} " + MIBENCH + " run --job {params.job:q} --label {params.label:q} > {log} 2>&1"


rule evaluate_membership:
    input:
        node_inputs,
    output:
        metrics=f"{R}/mia_eval/{{aid}}/metrics.json",
        manifest=f"{R}/mia_eval/{{aid}}/manifest.json",
    params:
        job=lambda w: job_json(w.aid),
        label=lambda w: job_label(w.aid),
    log:
        f"{R}/logs/mia_eval/{{aid}}.log",
    benchmark:
        f"{R}/benchmarks/mia_eval/{{aid}}.tsv"
    threads: res("metric", "threads")
    resources:
        mem_mb=res("metric", "mem_mb"),
        runtime=res("metric", "runtime"),
        gpu=res("metric", "gpu"),
    conda:
        "../../envs/mibench.yaml"
    shell:
        "MIBENCH_THREADS={threads} " + MIBENCH + " run --job {params.job:q} --label {params.label:q} > {log} 2>&1"


rule aggregate_membership:
    input:
        [PLAN.path(n.id, "manifest.json") for n in MIA_EVALS],
    output:
        table=f"{TABLES}/membership.parquet",
    params:
        labels=MIA_LABELS,
    log:
        f"{R}/logs/report/aggregate_membership.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/membership.py"


rule render_membership:
    input:
        table=f"{TABLES}/membership.parquet",
    output:
        markdown=report(
            f"{REPORTS}/tables/membership.md",
            caption="../report/membership.rst",
            category="8. Membership inference",
            subcategory="Tables",
        ),
    log:
        f"{R}/logs/report/render_membership.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/membership.py"


rule plot_membership_roc:
    input:
        metrics=lambda w: PLAN.path(MIA_EVALS_BY_LABEL[w.label].id),
        manifest=lambda w: PLAN.path(MIA_EVALS_BY_LABEL[w.label].id, "manifest.json"),
    output:
        figure=report(
            f"{REPORTS}/figures/membership/roc/{{label}}.png",
            caption="../report/membership_roc.rst",
            category="8. Membership inference",
            subcategory="ROC curves",
        ),
    params:
        labels=MIA_LABELS,
    log:
        f"{R}/logs/report/membership_roc/{{label}}.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/membership.py"


rule plot_membership_heatmap:
    input:
        table=f"{TABLES}/membership.parquet",
    output:
        figure=report(
            f"{REPORTS}/figures/membership/heatmap/{{label}}.png",
            caption="../report/membership_heatmap.rst",
            category="8. Membership inference",
            subcategory="Scenarios",
        ),
    log:
        f"{R}/logs/report/membership_heatmap/{{label}}.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/membership.py"


rule defense_threats:
    input:
        attacks=f"{TABLES}/attacks.parquet",
        membership=f"{TABLES}/membership.parquet",
    params:
        attack=(PLAN.config.get("membership") or {}).get("defense_attack") or "lira-online",
    output:
        table=f"{TABLES}/defense_threats.parquet",
        markdown=report(
            f"{REPORTS}/tables/defense_threats.md",
            caption="../report/defense_threats.rst",
            category="7. Defenses",
            subcategory="Both threats",
        ),
        latex=f"{REPORTS}/tables/defense_threats.tex",
        figure=report(
            f"{REPORTS}/figures/defense_threats.png",
            caption="../report/defense_threats.rst",
            category="7. Defenses",
            subcategory="Both threats",
        ),
    log:
        f"{R}/logs/report/defense_threats.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/membership.py"
