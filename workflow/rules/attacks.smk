# Stage 4: attacks, one job per (dataset, target, defense, attack).


rule run_attack:
    input:
        node_inputs,
    output:
        recon=f"{R}/attacks/{{aid}}/recon.safetensors",
        manifest=f"{R}/attacks/{{aid}}/manifest.json",
    params:
        job=lambda w: job_json(w.aid),
        label=lambda w: job_label(w.aid),
    log:
        f"{R}/logs/attacks/{{aid}}.log",
    benchmark:
        f"{R}/benchmarks/attacks/{{aid}}.tsv"
    threads: res("attack", "threads")
    resources:
        mem_mb=res("attack", "mem_mb"),
        runtime=res("attack", "runtime"),
        gpu=res("attack", "gpu"),
    conda:
        "../../envs/mibench.yaml"
    shell:
        "MIBENCH_THREADS={threads} " + MIBENCH + " run --job {params.job:q} --label {params.label:q} > {log} 2>&1"
