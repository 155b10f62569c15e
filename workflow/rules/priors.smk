# Stage 3: generative priors trained on the public split.


rule train_prior:
    input:
        node_inputs,
    output:
        generator=f"{R}/priors/{{aid}}/generator.safetensors",
        manifest=f"{R}/priors/{{aid}}/manifest.json",
    params:
        job=lambda w: job_json(w.aid),
        label=lambda w: job_label(w.aid),
    log:
        f"{R}/logs/priors/{{aid}}.log",
    benchmark:
        f"{R}/benchmarks/priors/{{aid}}.tsv"
    threads: res("prior", "threads")
    resources:
        mem_mb=res("prior", "mem_mb"),
        runtime=res("prior", "runtime"),
        gpu=res("prior", "gpu"),
    conda:
        "../../envs/mibench.yaml"
    shell:
        "MIBENCH_THREADS={threads} " + MIBENCH + " run --job {params.job:q} --label {params.label:q} > {log} 2>&1"
