# Stage 6: Parquet tables, Markdown tables and figures (from tables and artifacts only).
# Every rule runs workflow/scripts/report.py, which calls the library function the rule names
# in params.call with params.args (a script, not the shell: the aggregate rule's input list
# grows with the grid and would overflow a shell command line).
import hashlib

import os


rule aggregate_results:
    input:
        metric_manifests(),
    output:
        attacks=f"{TABLES}/attacks.parquet",
        classes=f"{TABLES}/attack_classes.parquet",
    params:
        # The row labels come from the config. A plain value, so Snakemake compares it: renaming a
        # run reruns this rule, not its artifacts (args, derived from the files, is not compared).
        runs=RUN_LABELS,
        call="mibench_core.report.aggregate:write_tables",
        args=lambda w, input, output: [
            [os.path.dirname(p) for p in input], output.attacks, output.classes, json.loads(RUN_LABELS)
        ],
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


# One row per setting over its replicate seeds (means, t intervals; one seed: the run's
# bootstrap interval): what the figures and the paper tables draw.
rule summarise_results:
    input:
        attacks=f"{TABLES}/attacks.parquet",
    output:
        summary=f"{TABLES}/attacks_summary.parquet",
    params:
        # plain values, so Snakemake compares them: a new level reruns this rule
        statistics=json.dumps(CFG["statistics"], sort_keys=True),
        call="mibench_core.report.aggregate:write_summary",
        args=lambda w, input, output: [input.attacks, output.summary, CFG["statistics"]["confidence"]],
    log:
        f"{R}/logs/report/summarise_results.log",
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
    params:
        call="mibench_core.report.figures:markdown_table",
        args=lambda w, input, output: [input.attacks, output.markdown],
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
        attacks=f"{TABLES}/attacks_summary.parquet",
    output:
        figure=report(
            f"{REPORTS}/figures/comparison.png",
            caption="../report/comparison.rst",
            category="6. Results",
            subcategory="Figures",
        ),
    params:
        call="mibench_core.report.figures:comparison_chart",
        args=lambda w, input, output: [input.attacks, output.figure],
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
        data=lambda w: PLAN.path(PLAN.nodes[run_by_label(w.label).metric_ids[0]].inputs["data"]),
    output:
        figure=report(
            f"{REPORTS}/figures/reconstructions/{{label}}.png",
            caption="../report/reconstructions.rst",
            category="4. Attacks",
            subcategory="Reconstructions",
        ),
    params:
        call="mibench_core.report.figures:reconstruction_grid",
        # the title names the run as this config does
        args=lambda w, input, output: [
            os.path.dirname(input.recon), os.path.dirname(input.data), output.figure, w.label
        ],
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
    params:
        call="mibench_core.report.figures:prior_samples",
        args=lambda w, input, output: [os.path.dirname(input.generator), output.figure, w.label],
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


rule plot_queries:
    input:
        attacks=f"{TABLES}/attacks_summary.parquet",
    output:
        figure=report(
            f"{REPORTS}/figures/queries.png",
            caption="../report/queries.rst",
            category="6. Results",
            subcategory="Queries",
        ),
    params:
        call="mibench_core.report.figures:queries_chart",
        args=lambda w, input, output: [input.attacks, output.figure],
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


# One figure and one table per defense perspective (mibench_core.report.PERSPECTIVES); the
# caption picks the perspective's text by the wildcard.
rule plot_perspective:
    input:
        attacks=f"{TABLES}/attacks_summary.parquet",
    output:
        figure=report(
            f"{REPORTS}/figures/perspectives/{{perspective}}.png",
            caption="../report/perspective.rst",
            category="7. Defenses",
            subcategory="{perspective}",
        ),
        table=report(
            f"{REPORTS}/tables/perspectives/{{perspective}}.md",
            caption="../report/perspective.rst",
            category="7. Defenses",
            subcategory="{perspective}",
        ),
    params:
        call=lambda w: f"mibench_core.report.perspectives:{w.perspective}",
        args=lambda w, input, output: [input.attacks, output.figure, output.table],
    log:
        f"{R}/logs/report/perspectives/{{perspective}}.log",
    wildcard_constraints:
        perspective="|".join(PERSPECTIVES),
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"


rule render_defense_matrix:
    input:
        attacks=f"{TABLES}/attacks_summary.parquet",
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
    params:
        call="mibench_core.report.perspectives:defense_matrix",
        args=lambda w, input, output: [input.attacks, output.markdown, output.latex],
    log:
        f"{R}/logs/report/perspectives/defense_matrix.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"


# Attacks per target model and defenses per attack, ranked with significance groups
# (the run as the unit: two-way method x seed analysis, Holm-corrected).
rule rank_methods:
    input:
        attacks=f"{TABLES}/attacks.parquet",
        per_sample=per_sample_files(),
    output:
        table=f"{TABLES}/ranking.parquet",
        pairs=f"{TABLES}/ranking_pairs.parquet",
        markdown=report(
            f"{REPORTS}/tables/ranking.md",
            caption="../report/ranking.rst",
            category="6. Results",
            subcategory="Rankings",
        ),
        latex=f"{REPORTS}/tables/ranking.tex",
    params:
        statistics=json.dumps({**CFG["statistics"], "seed": CFG["seed"]}, sort_keys=True),
        call="mibench_core.report.ranking:rank_methods",
        args=lambda w, input, output: [input.attacks, list(input.per_sample), output.table, output.pairs,
                                       output.markdown, output.latex, CFG["statistics"], CFG["seed"]],
    log:
        f"{R}/logs/report/rank_methods.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"


# The MIBench paper's tables: attacks per target model, and defenses.
rule render_paper_attacks:
    input:
        summary=f"{TABLES}/attacks_summary.parquet",
        ranking=f"{TABLES}/ranking.parquet",
    output:
        markdown=report(
            f"{REPORTS}/tables/paper_attacks.md",
            caption="../report/paper_tables.rst",
            category="6. Results",
            subcategory="Paper tables",
        ),
        latex=f"{REPORTS}/tables/paper_attacks.tex",
    params:
        call="mibench_core.report.paper:attack_tables",
        args=lambda w, input, output: [input.summary, input.ranking, output.markdown, output.latex],
    log:
        f"{R}/logs/report/render_paper_attacks.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"


rule render_paper_defenses:
    input:
        summary=f"{TABLES}/attacks_summary.parquet",
    output:
        markdown=report(
            f"{REPORTS}/tables/paper_defenses.md",
            caption="../report/paper_tables.rst",
            category="7. Defenses",
            subcategory="Paper tables",
        ),
        latex=f"{REPORTS}/tables/paper_defenses.tex",
    params:
        call="mibench_core.report.paper:defense_tables",
        args=lambda w, input, output: [input.summary, output.markdown, output.latex],
    log:
        f"{R}/logs/report/render_paper_defenses.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"


# Report grouping: one category per stage, numbered as the stage files are
# ("3. Priors", "4. Attacks", "6. Results"), so the report lists them in
# pipeline order; subcategories name the kind of figure or table. Captions
# live in workflow/report/*.rst (Jinja: snakemake.wildcards, snakemake.config).
report: "../report/workflow.rst"


# The literature's claims (config/claims.yaml), each checked on whatever runs this config holds.
# The file's sha256 is a parameter, not the file an input: an input's path is absolute (the
# checkout's), and a copied or moved checkout must rerun nothing; an edited claims file reruns it.
CLAIMS_FILE = os.path.join(workflow.basedir, "config", "claims.yaml")
with open(CLAIMS_FILE, "rb") as _f:
    CLAIMS_SHA256 = hashlib.sha256(_f.read()).hexdigest()


def claims_tables(wildcards=None):
    tables = {"attacks": f"{TABLES}/attacks.parquet"}
    if membership_targets():
        tables["membership"] = f"{TABLES}/membership.parquet"
    if split_targets():
        tables["split"] = f"{TABLES}/split_inference.parquet"
    return tables


rule check_claims:
    input:
        unpack(claims_tables),
    output:
        table=f"{TABLES}/claims.parquet",
        markdown=report(
            f"{REPORTS}/tables/claims.md",
            caption="../report/ranking.rst",
            category="6. Results",
            subcategory="Claims",
        ),
        latex=f"{REPORTS}/tables/claims.tex",
    params:
        statistics=json.dumps(CFG["statistics"], sort_keys=True),
        claims_sha256=CLAIMS_SHA256,
        call="mibench_core.report.claims:write_claims",
        args=lambda w, input, output: [CLAIMS_FILE, input.get("attacks"), input.get("membership"),
                                       input.get("split"), output.table, output.markdown, output.latex,
                                       CFG["statistics"]],
    log:
        f"{R}/logs/report/check_claims.log",
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    conda:
        "../../envs/mibench.yaml"
    script:
        "../scripts/report.py"
