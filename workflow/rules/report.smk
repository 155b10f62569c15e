# Stage 6: Parquet tables, Markdown tables and figures (from tables and artifacts only).


rule aggregate_results:
    input:
        metric_manifests(),
    output:
        attacks=f"{TABLES}/attacks.parquet",
        classes=f"{TABLES}/attack_classes.parquet",
    log:
        f"{R}/logs/report/aggregate_results.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"


rule render_tables:
    input:
        attacks=f"{TABLES}/attacks.parquet",
    output:
        markdown=report(
            f"{REPORTS}/tables/attacks.md",
            caption="../report/attacks_table.rst",
            category="Results",
            subcategory="Tables",
        ),
    log:
        f"{R}/logs/report/render_tables.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"


rule plot_comparison:
    input:
        attacks=f"{TABLES}/attacks.parquet",
    output:
        figure=report(
            f"{REPORTS}/figures/comparison.png",
            caption="../report/comparison.rst",
            category="Results",
            subcategory="Comparison",
        ),
    log:
        f"{R}/logs/report/plot_comparison.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"


rule plot_reconstructions:
    input:
        recon=lambda w: PLAN.path(run_by_label(w.label).attack_id),
        manifest=lambda w: PLAN.path(run_by_label(w.label).attack_id, "manifest.json"),
        data=lambda w: PLAN.path(PLAN.nodes[run_by_label(w.label).attack_id].inputs["data"]),
    output:
        figure=report(
            f"{REPORTS}/figures/reconstructions/{{label}}.png",
            caption="../report/reconstructions.rst",
            category="Attacks",
            subcategory="Reconstructions",
        ),
    log:
        f"{R}/logs/report/reconstructions/{{label}}.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"


rule plot_prior_samples:
    input:
        generator=lambda w: PLAN.path(prior_by_label(w.label).id),
        manifest=lambda w: PLAN.path(prior_by_label(w.label).id, "manifest.json"),
    output:
        figure=report(
            f"{REPORTS}/figures/priors/{{label}}.png",
            caption="../report/priors.rst",
            category="Priors",
            subcategory="Samples",
        ),
    log:
        f"{R}/logs/report/priors/{{label}}.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"


# --- rules of issue 5 (black-box figures) go below this line ---


rule plot_queries:
    input:
        attacks=f"{TABLES}/attacks.parquet",
    output:
        figure=report(
            f"{REPORTS}/figures/queries.png",
            caption="../report/queries.rst",
            category="Results",
            subcategory="Queries",
        ),
    log:
        f"{R}/logs/report/plot_queries.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"

#
#
#
# --- rules of issue 6 (defense perspectives) go below this line ---
#
#
#
# --- rules of issue 9 go below this line ---
