# Stage 1b: what the plan derives from a data artifact (mibench_core/data/views.py): the public
# view (all that priors and attacks see of the data), the private victims of per-sample attacks,
# and the target's answers on them (the attack's input instead of the victims' images).


rule make_view:
    input:
        node_inputs,
    output:
        main=f"{R}/{{view}}/{{aid}}/{{view}}.safetensors",
        manifest=f"{R}/{{view}}/{{aid}}/manifest.json",
    params:
        job=lambda w: job_json(w.aid),
        label=lambda w: job_label(w.aid),
    log:
        f"{R}/logs/{{view}}/{{aid}}.log",
    benchmark:
        f"{R}/benchmarks/{{view}}/{{aid}}.tsv"
    wildcard_constraints:
        view="public|victims|answers",
    threads: res("data", "threads")
    resources:
        mem_mb=res("data", "mem_mb"),
        runtime=res("data", "runtime"),
        gpu=res("data", "gpu"),
    conda:
        "../../envs/mibench.yaml"
    shell:
        "MIBENCH_THREADS={threads} " + MIBENCH + " run --job {params.job:q} --label {params.label:q} > {log} 2>&1"
