# Models built locally: Llama architecture, seeded random weights, a real tokenizer.


rule build_model:
    output:
        directory(f"{MODELS_DIR}/{{model}}"),
    log:
        "logs/models/{model}.log",
    conda:
        "../../envs/measure-cpu.yaml"
    params:
        architecture=model_architecture,
        seed=model_seed,
    script:
        "../../scripts/rules/build_model.py"
