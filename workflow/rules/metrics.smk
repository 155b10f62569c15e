# Stage 5: every configured metric of one attack run, in one job (shared evaluation features).


rule compute_metrics:
    input:
        node_inputs,
    output:
        metrics=f"{R}/metrics/{{aid}}/metrics.json",
        per_sample=f"{R}/metrics/{{aid}}/per_sample.safetensors",
        manifest=f"{R}/metrics/{{aid}}/manifest.json",
    params:
        job=lambda w: job_json(w.aid),
        label=lambda w: job_label(w.aid),
    log:
        f"{R}/logs/metrics/{{aid}}.log",
    benchmark:
        f"{R}/benchmarks/metrics/{{aid}}.tsv"
    threads: res("metric", "threads")
    resources:
        mem_mb=res("metric", "mem_mb"),
        runtime=res("metric", "runtime"),
        gpu=res("metric", "gpu"),
    conda:
        "../../envs/mibench.yaml"
    shell:
        "MIBENCH_THREADS={threads} " + MIBENCH + " run --job {params.job:q} --label {params.label:q} > {log} 2>&1"
