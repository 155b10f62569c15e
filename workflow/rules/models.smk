# Stage 2: classifiers: targets (with their defense) and evaluation models.


rule train_model:
    input:
        node_inputs,
    output:
        model=f"{R}/models/{{aid}}/model.safetensors",
        manifest=f"{R}/models/{{aid}}/manifest.json",
    params:
        job=lambda w: job_json(w.aid),
        label=lambda w: job_label(w.aid),
    log:
        f"{R}/logs/models/{{aid}}.log",
    benchmark:
        f"{R}/benchmarks/models/{{aid}}.tsv"
    threads: res("model", "threads")
    resources:
        mem_mb=res("model", "mem_mb"),
        runtime=res("model", "runtime"),
        gpu=res("model", "gpu"),
    conda:
        "../../envs/mibench.yaml"
    shell:
        "MIBENCH_THREADS={threads} " + MIBENCH + " run --job {params.job:q} --label {params.label:q} > {log} 2>&1"
