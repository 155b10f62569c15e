# Stage 6: Parquet tables, Markdown tables and figures (from tables and artifacts only).


rule aggregate_results:
    input:
        metric_manifests(),
    params:
        # the row labels come from the config: renaming a run reruns this rule, not its artifacts
        runs=run_labels(),
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
            category="6. Results",
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
            category="6. Results",
            subcategory="Figures",
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
            category="4. Attacks",
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
            category="3. Priors",
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
            category="6. Results",
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
rule plot_perspective_privacy_utility:
    input:
        attacks=f"{TABLES}/attacks.parquet",
    output:
        figure=report(
            f"{REPORTS}/figures/perspectives/privacy_utility.png",
            caption="../report/perspective_privacy_utility.rst",
            category="7. Defenses",
            subcategory="Privacy-utility",
        ),
        table=report(
            f"{REPORTS}/tables/perspectives/privacy_utility.md",
            caption="../report/perspective_privacy_utility.rst",
            category="7. Defenses",
            subcategory="Privacy-utility",
        ),
    log:
        f"{R}/logs/report/perspectives/privacy_utility.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/perspectives.py"


rule plot_perspective_predictive_power:
    input:
        attacks=f"{TABLES}/attacks.parquet",
    output:
        figure=report(
            f"{REPORTS}/figures/perspectives/predictive_power.png",
            caption="../report/perspective_predictive_power.rst",
            category="7. Defenses",
            subcategory="Predictive power",
        ),
        table=report(
            f"{REPORTS}/tables/perspectives/predictive_power.md",
            caption="../report/perspective_predictive_power.rst",
            category="7. Defenses",
            subcategory="Predictive power",
        ),
    log:
        f"{R}/logs/report/perspectives/predictive_power.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/perspectives.py"


rule plot_perspective_resolution:
    input:
        attacks=f"{TABLES}/attacks.parquet",
    output:
        figure=report(
            f"{REPORTS}/figures/perspectives/resolution.png",
            caption="../report/perspective_resolution.rst",
            category="7. Defenses",
            subcategory="Resolution",
        ),
        table=report(
            f"{REPORTS}/tables/perspectives/resolution.md",
            caption="../report/perspective_resolution.rst",
            category="7. Defenses",
            subcategory="Resolution",
        ),
    log:
        f"{R}/logs/report/perspectives/resolution.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/perspectives.py"


rule plot_perspective_robustness:
    input:
        attacks=f"{TABLES}/attacks.parquet",
    output:
        figure=report(
            f"{REPORTS}/figures/perspectives/robustness.png",
            caption="../report/perspective_robustness.rst",
            category="7. Defenses",
            subcategory="Adversarial robustness",
        ),
        table=report(
            f"{REPORTS}/tables/perspectives/robustness.md",
            caption="../report/perspective_robustness.rst",
            category="7. Defenses",
            subcategory="Adversarial robustness",
        ),
    log:
        f"{R}/logs/report/perspectives/robustness.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/perspectives.py"


rule render_defense_matrix:
    input:
        attacks=f"{TABLES}/attacks.parquet",
    output:
        markdown=report(
            f"{REPORTS}/tables/defense_matrix.md",
            caption="../report/defense_matrix.rst",
            category="7. Defenses",
            subcategory="Matrix",
        ),
        latex=report(
            f"{REPORTS}/tables/defense_matrix.tex",
            caption="../report/defense_matrix.rst",
            category="7. Defenses",
            subcategory="Matrix",
        ),
    log:
        f"{R}/logs/report/perspectives/defense_matrix.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/perspectives.py"


#
#
#
# --- rules of issue 9 go below this line ---
# Report grouping: one category per stage, numbered as the stage files are
# ("3. Priors", "4. Attacks", "6. Results"), so the report lists them in
# pipeline order; subcategories name the kind of figure or table. Captions
# live in workflow/report/*.rst (Jinja: snakemake.wildcards, snakemake.config).
report: "../report/workflow.rst"
