# Stage 1: datasets -> deterministic private / public splits.


rule prepare_data:
    input:
        node_inputs,
    output:
        data=f"{R}/data/{{aid}}/data.safetensors",
        manifest=f"{R}/data/{{aid}}/manifest.json",
    params:
        job=lambda w: job_json(w.aid),
        label=lambda w: job_label(w.aid),
    log:
        f"{R}/logs/data/{{aid}}.log",
    benchmark:
        f"{R}/benchmarks/data/{{aid}}.tsv"
    threads: res("data", "threads")
    resources:
        mem_mb=res("data", "mem_mb"),
        runtime=res("data", "runtime"),
        gpu=res("data", "gpu"),
    conda:
        "../../envs/mibench.yaml"
    shell:
        "MIBENCH_THREADS={threads} " + MIBENCH + " run --job {params.job:q} --label {params.label:q} > {log} 2>&1"
