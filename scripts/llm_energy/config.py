"""Load and check the pipeline configuration: JSON schema plus cross-field rules, one-line errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"

# vLLM's CPU attention rejects small heads (head_dim 16 fails, 64 works).
MIN_HEAD_DIM = 64


def _fill_defaults(validator_class):
    """Extend a jsonschema validator so that ``default`` values fill missing keys (as Snakemake does)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _fill_defaults(jsonschema.Draft202012Validator)


def load_schema() -> dict:
    """The config schema (``workflow/schemas/config.schema.yaml``)."""
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def _one_line(error: jsonschema.ValidationError, schema: dict) -> str:
    """Turn a schema error into one line naming the key, the bad value and what is allowed."""
    key = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        where = key if error.absolute_path else "the top level"
        return f"unknown key {', '.join(map(repr, extra))} in {where}; allowed keys: {', '.join(allowed)}"
    if error.validator == "required":
        return f"{key}: {error.message}"
    if error.validator == "enum":
        return f"{key}: {error.instance!r} is not allowed; choose one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "propertyNames":
        return f"{key}: name {error.instance!r} is not allowed; {error.message}"
    return f"{key}: {error.message}"


def validate(config: dict) -> dict:
    """Check ``config`` against the schema and the cross-field rules; return a copy with defaults filled.

    Raises :class:`UserError` with one line naming the first bad key.
    """
    cfg = copy.deepcopy(config)
    schema = load_schema()
    errors = sorted(_Validator(schema).iter_errors(cfg), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        raise UserError(f"config error: {_one_line(errors[0], schema)}")
    _cross_field_checks(cfg)
    return cfg


def _increasing(values: list[int]) -> bool:
    return all(b > a for a, b in zip(values, values[1:]))


def _cross_field_checks(cfg: dict) -> None:
    for axis in ("input", "output"):
        edges = cfg["bins"][axis]
        if not _increasing(edges):
            raise UserError(f"config error: bins.{axis}: edges must be strictly increasing, got {edges}")
    for name, model in cfg["models"].items():
        if model["source"] == "build":
            arch = model.get("architecture")
            if not arch:
                raise UserError(f"config error: models.{name}.architecture is required when source is 'build'")
            missing = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                       "num_key_value_heads", "max_position_embeddings"} - set(arch)
            if missing:
                raise UserError(f"config error: models.{name}.architecture: missing {', '.join(sorted(missing))}")
            if arch["hidden_size"] % arch["num_attention_heads"]:
                raise UserError(f"config error: models.{name}.architecture: hidden_size {arch['hidden_size']} "
                                f"is not divisible by num_attention_heads {arch['num_attention_heads']}")
            head_dim = arch["hidden_size"] // arch["num_attention_heads"]
            if head_dim < MIN_HEAD_DIM:
                raise UserError(f"config error: models.{name}.architecture: head_dim {head_dim} "
                                f"(hidden_size / num_attention_heads) must be at least {MIN_HEAD_DIM}")
            if arch["num_attention_heads"] % arch["num_key_value_heads"]:
                raise UserError(f"config error: models.{name}.architecture: num_attention_heads must be a "
                                f"multiple of num_key_value_heads")
        elif not model.get("path"):
            raise UserError(f"config error: models.{name}.path is required when source is 'local'")
    for i, cell in enumerate(cfg["cells"]):
        if cell["model"] not in cfg["models"]:
            raise UserError(f"config error: cells[{i}].model: {cell['model']!r} is not in models "
                            f"({', '.join(cfg['models'])})")
        limit = max_model_len(cfg, cell["model"])
        if limit is not None:
            longest = max(p[0] + p[1] for p in cell_points(cfg))
            if longest > limit:
                raise UserError(f"config error: cells[{i}]: a point needs {longest} tokens (input + output) but "
                                f"model {cell['model']!r} accepts at most {limit} (max_position_embeddings)")
    first_model = cfg["cells"][0]["model"]
    for name, w in cfg["workloads"].items():
        if w["kind"] == "trace":
            for col in ("input_column", "output_column"):
                if not w.get(col):
                    raise UserError(f"config error: workloads.{name}.{col} is required for a trace")
        else:
            for key in ("task", "template", "output_tokens"):
                if key not in w:
                    raise UserError(f"config error: workloads.{name}.{key} is required for a task")
            w["tokenizer_model"] = w.get("tokenizer_model") or first_model
            if w["tokenizer_model"] not in cfg["models"]:
                raise UserError(f"config error: workloads.{name}.tokenizer_model: {w['tokenizer_model']!r} is not "
                                f"in models ({', '.join(cfg['models'])})")


def max_model_len(cfg: dict, model: str) -> int | None:
    """Longest sequence a model accepts: from the config (built models) or the folder's config.json."""
    spec = cfg["models"][model]
    if spec["source"] == "build":
        return (spec.get("architecture") or {}).get("max_position_embeddings")
    import json

    path = Path(spec.get("path", "")) / "config.json"
    try:
        return json.loads(path.read_text()).get("max_position_embeddings")
    except (OSError, ValueError):
        return None


def check_hardware_choice(cfg: dict, detected: str, existing) -> str:
    """The hardware slug the run measures; an explicit slug that is not this machine needs its files present.

    ``existing(slug)`` lists the cells' measurement files that are missing for that slug.
    """
    wanted = cfg["hardware"]
    if wanted in ("auto", detected):
        return detected
    missing = existing(wanted)
    if missing:
        raise UserError(f"config error: hardware: {wanted!r} is not this machine ({detected!r}) and "
                        f"{missing[0]} is missing; measure it on a {wanted} machine and copy the file here, "
                        "or set hardware: auto")
    return wanted


def load(path: str | Path) -> dict:
    """Read a YAML config file and validate it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise UserError(f"config file {path} must hold a mapping of keys")
    return validate(raw)


def cell_points(cfg: dict) -> list[tuple[int, int, int, str]]:
    """The (input_len, output_len, batch_size, role) points every cell sweeps, sorted.

    Two families: the bin grid (``grid``: every (input edge, output edge), so that any workload's
    bins can be estimated) at batch ``batch_size`` (or the largest that fits, when probing is on)
    and the controlled sweeps of Figure 2 (``sweep``). A point in both has role ``grid,sweep``.
    """
    m = cfg["measurement"]
    roles: dict[tuple[int, int, int], set[str]] = {}
    for i in cfg["bins"]["input"]:
        for o in cfg["bins"]["output"]:
            roles.setdefault((i, o, m["batch_size"]), set()).add("grid")
    for b in m["sweep_batch_sizes"]:
        for shape in [(i, m["sweep_fixed_output"], b) for i in m["sweep_input_lengths"]] + \
                     [(m["sweep_fixed_input"], o, b) for o in m["sweep_output_lengths"]]:
            roles.setdefault(shape, set()).add("sweep")
    return [(*shape, ",".join(sorted(r))) for shape, r in sorted(roles.items())]


def cells(cfg: dict) -> list[tuple[str, str, str]]:
    """Every (model, variant, decoding) combination the config asks for, in order, without repeats."""
    seen: dict[tuple[str, str, str], None] = {}
    for cell in cfg["cells"]:
        for variant in cell["variants"]:
            for decoding in cell["decoding"]:
                seen[(cell["model"], variant, decoding)] = None
    return list(seen)
