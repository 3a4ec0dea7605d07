"""Load and check the pipeline configuration: JSON schema plus cross-field rules, one-line errors."""

from __future__ import annotations

import copy
import difflib
import functools
from pathlib import Path

import jsonschema
import yaml

from llm_energy import UserError
from llm_energy.pipeline.architectures import read_architecture_file
from llm_energy.pipeline.cells import DEFAULT_KINDS, SPECULATIVE, VARIANT_CHOICES, Cell, Variant
from llm_energy.pipeline.roles import PADDED

REPO_ROOT = Path(__file__).resolve().parents[3]
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


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    return load_schema()


def section_defaults(section: str) -> dict:
    """The schema's default of every key of a top-level section that has one (``measurement``,
    ``decoding``, ...): the one place a default is written."""
    props = _schema()["properties"][section]["properties"]
    return {k: copy.deepcopy(v["default"]) for k, v in props.items() if "default" in v}


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def _suggest(extra: list[str], allowed: list[str]) -> str:
    """'did you mean ...?' for a misspelt key (the allowed keys are long lists: 31 at the top level);
    the allowed keys only where no unknown key is close to one."""
    close = {k: difflib.get_close_matches(k, allowed, n=1, cutoff=0.6) for k in extra}
    if not all(close.values()):
        return f"allowed keys: {', '.join(allowed)}"
    if len(close) == 1:
        return f"did you mean {next(iter(close.values()))[0]!r}?"
    return "did you mean " + " and ".join(f"{m[0]!r} (for {k!r})" for k, m in close.items()) + "?"


def _one_line(error: jsonschema.ValidationError, schema: dict) -> str:
    """Turn a schema error into one line naming the key, the bad value and what is allowed."""
    key = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        where = key if error.absolute_path else "the top level"
        return f"unknown key {', '.join(map(repr, extra))} in {where}; {_suggest(extra, allowed)}"
    if error.validator == "required":
        return f"{key}: {error.message}"
    if error.validator == "enum":
        return f"{key}: {error.instance!r} is not allowed; choose one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "pattern" and error.parent is None and "variants" in key:
        return f"{key}: {error.instance!r} is not allowed; choose one of {VARIANT_CHOICES}"
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
        _check_model(cfg, name, model)
    for i, cell in enumerate(cfg["cells"]):
        if cell["model"] not in cfg["models"]:
            raise UserError(f"config error: cells[{i}].model: {cell['model']!r} is not in models "
                            f"({', '.join(cfg['models'])})")
        if "speculative" in cell["decoding"]:
            draft = cfg["models"][cell["model"]]["draft_model"]
            if not draft:
                raise UserError(f"config error: cells[{i}]: decoding 'speculative' needs "
                                f"models.{cell['model']}.draft_model")
        prompts = cell.get("prompts")
        if prompts is not None and cfg["workloads"].get(prompts, {}).get("kind") != "task":
            tasks = [n for n, w in cfg["workloads"].items() if w["kind"] == "task"]
            raise UserError(f"config error: cells[{i}].prompts: {prompts!r} is not a task workload "
                            f"({', '.join(tasks) or 'none configured'})")
        limit = max_model_len(cfg, cell["model"])
        if limit is not None:
            longest = max(p[0] + p[1] for p in cell_points(cfg, cell["points"], cell.get("shape"),
                                                           cell.get("batch_sizes")))
            if longest > limit:
                raise UserError(f"config error: cells[{i}]: a point needs {longest} tokens (input + output) but "
                                f"model {cell['model']!r} accepts at most {limit} (max_position_embeddings)")
    r = cfg["replay"]
    if r["workloads"] is None:
        r["workloads"] = list(cfg["workloads"])
    unknown = [w for w in r["workloads"] if w not in cfg["workloads"]]
    if unknown:
        raise UserError(f"config error: replay.workloads: {', '.join(map(repr, unknown))} not in workloads "
                        f"({', '.join(cfg['workloads'])})")
    o = cfg["online"]
    if o["rates"]:
        trace = o["trace"]
        traces = [n for n, w in cfg["workloads"].items() if w["kind"] == "trace"]
        if trace not in traces:
            raise UserError(f"config error: online.trace: {trace!r} is not a trace workload ({', '.join(traces)}); "
                            "the rate sweep sends its requests")
        if r["enabled"] and trace not in r["workloads"]:
            raise UserError(f"config error: online.trace: {trace!r} is not among replay.workloads "
                            f"({', '.join(r['workloads'])}); its offline replay is the rate sweep's baseline")
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


_REQUIRED_ARCH = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                  "max_position_embeddings"}


def _check_model(cfg: dict, name: str, model: dict) -> None:
    where = f"config error: models.{name}"
    if model["source"] == "build":
        arch = architecture(model)
        missing = _REQUIRED_ARCH - set(arch)
        if missing:
            raise UserError(f"{where}.architecture: missing {', '.join(sorted(missing))} (or give architecture_file)")
        heads = arch["num_attention_heads"]
        kv = arch.get("num_key_value_heads") or heads
        if not arch.get("head_dim") and arch["hidden_size"] % heads:
            raise UserError(f"{where}.architecture: hidden_size {arch['hidden_size']} is not divisible by "
                            f"num_attention_heads {heads}")
        head_dim = arch.get("head_dim") or arch["hidden_size"] // heads
        if head_dim < MIN_HEAD_DIM:
            raise UserError(f"{where}.architecture: head_dim {head_dim} (hidden_size / num_attention_heads) must "
                            f"be at least {MIN_HEAD_DIM}")
        if heads % kv:
            raise UserError(f"{where}.architecture: num_attention_heads must be a multiple of num_key_value_heads")
    elif model["source"] == "local" and not model.get("path"):
        raise UserError(f"{where}.path is required when source is 'local'")
    elif model["source"] == "hub" and not model.get("hub_id"):
        raise UserError(f"{where}.hub_id is required when source is 'hub'")
    elif model["source"] == "pypi-gguf":
        for key in ("package", "gguf_file"):
            if not model.get(key):
                raise UserError(f"{where}.{key} is required when source is 'pypi-gguf'")
    draft = model["draft_model"]
    if draft is not None and (draft not in cfg["models"] or draft == name):
        raise UserError(f"{where}.draft_model: {draft!r} is not another model in models ({', '.join(cfg['models'])})")


def architecture(spec: dict) -> dict:
    """A built model's architecture: its ``architecture_file`` (if any) with ``architecture`` on top."""
    base = {}
    if spec.get("architecture_file"):
        base = read_architecture_file(spec["architecture_file"])
    return {**base, **(spec.get("architecture") or {})}


def model_dir_of(cfg: dict, model: str) -> Path:
    """Where a configured model lives: its own ``path`` (``source: local``), else ``models_dir/<name>``
    (built, hub and package-registry models). The one place that says so (the Snakefile's rules too)."""
    spec = cfg["models"][model]
    return Path(spec["path"]) if spec["source"] == "local" else Path(cfg["models_dir"]) / model


def max_model_len(cfg: dict, model: str) -> int | None:
    """Longest sequence a model accepts: from the config (built models) or the folder's config.json."""
    spec = cfg["models"][model]
    if spec["source"] == "build":
        return architecture(spec).get("max_position_embeddings")
    import json

    path = model_dir_of(cfg, model) / "config.json"
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
                        f"{missing[0]} is missing; measure it on a machine detected as {wanted} and copy the file "
                        "here, or set hardware: auto")
    return wanted


def check_gpus_suffice(cfg: dict, hardware: str, gpus: int, missing) -> None:
    """Refuse, before any job, a tensor-parallel cell this machine cannot run and that was not
    measured elsewhere and copied in.

    ``missing(model, variant, decoding)`` tells whether the cell's file for ``hardware`` is absent.
    """
    for model, variant, decoding in cells(cfg):
        tp = Variant.parse(variant).tensor_parallel
        if tp > max(gpus, 1) and missing(model, variant, decoding):
            raise UserError(
                f"config error: cells: variant {variant!r} runs tensor parallel over {tp} GPUs and this "
                f"machine ({hardware}) has {gpus}; measure it on a machine with {tp} GPUs and copy "
                f"results/measurements/<its hardware>/{model}/{variant}/{decoding}.parquet here, or remove "
                f"{variant!r} from the cells")


def load(path: str | Path) -> dict:
    """Read a YAML config file and validate it."""
    return validate(read_mapping(path))


def read_mapping(path: str | Path) -> dict:
    """A config file's mapping of keys, not yet validated; one line on why not."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"config file {path} is a folder") from None
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise UserError(f"config file {path} must hold a mapping of keys")
    return raw


def merge(config: dict, overlay: dict) -> dict:
    """``config`` updated by ``overlay`` as Snakemake merges a ``--configfile`` into the Snakefile's
    ``configfile`` (``snakemake.utils.update_config``): mappings key by key, lists and values replaced."""
    out = copy.deepcopy(config) if isinstance(config, dict) else {}
    for key, value in overlay.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) else copy.deepcopy(value)
    return out


def load_overlays(files: list[str | Path], base: str | Path | None = "config.yaml") -> dict:
    """``base`` (the Snakefile's ``configfile``; None: none) merged with each of ``files`` in order, as
    ``snakemake --configfile FILE ...`` sees it, validated. A file that is ``base`` is not merged twice."""
    raw: dict = {}
    if base is not None:
        raw = read_mapping(base)
    for f in files:
        if base is not None and Path(f).exists() and Path(base).exists() and Path(f).samefile(base):
            continue
        raw = merge(raw, read_mapping(f))
    return validate(raw)


ALL_POINTS = DEFAULT_KINDS


def cell_points(cfg: dict, kinds=ALL_POINTS, shape=None, batch_sizes=None) -> list[tuple[int, int, int, str]]:
    """The (input_len, output_len, batch_size, role) points a cell sweeps, sorted.

    Families (``kinds``): the bin grid (``grid``: every (input edge, output edge), so that any
    workload's bins can be estimated) at batch ``batch_size`` (or the largest that fits, when
    probing is on); the controlled sweeps of Figure 2 (``sweep``); and only the fixed sweep
    shape at every sweep batch size (``batch``, a subset of ``sweep``, for the batch-size
    figures). A point in several has every role, e.g. ``grid,sweep``; ``batch`` points have
    role ``sweep``. ``shape`` (input, output): the cell's own batch shape instead of the sweeps' fixed one;
    ``batch_sizes``: the cell's own batch sizes of its ``batch`` points instead of the sweeps' batch sizes.
    """
    m = cfg["measurement"]
    fixed = tuple(shape) if shape else (m["sweep_fixed_input"], m["sweep_fixed_output"])
    roles: dict[tuple[int, int, int], set[str]] = {}
    if "grid" in kinds:
        for i in cfg["bins"]["input"]:
            for o in cfg["bins"]["output"]:
                roles.setdefault((i, o, m["batch_size"]), set()).add("grid")
    shapes = []
    if "sweep" in kinds:
        for b in m["sweep_batch_sizes"]:
            shapes += [(i, m["sweep_fixed_output"], b) for i in m["sweep_input_lengths"]]
            shapes += [(m["sweep_fixed_input"], o, b) for o in m["sweep_output_lengths"]]
    if "batch" in kinds:
        shapes += [(*fixed, b) for b in (batch_sizes or m["sweep_batch_sizes"])]
    for shape in shapes:
        roles.setdefault(shape, set()).add("sweep")
    return [(*shape, ",".join(sorted(r))) for shape, r in sorted(roles.items())]


def padded_points(cfg: dict, cell: Cell) -> list[tuple[int, int, int, str]]:
    """Points of role ``padded`` of a static-batching cell that measures the bin grid (the cells whose
    energy model serves a workload): batches of prompts of different lengths, left-padded to the
    longest as a static server pads them (:func:`llm_energy.measurement.loop.padded_lengths`). transformers runs
    a padded batch through its masked attention path, 0-26 % dearer than the unpadded batch of the same
    shape that the grid measures, and every replayed batch of a real trace is padded: the energy model
    fits that cost from these points (``energy_model``). The shapes, at the grid's batch size: each
    sweep input length at the fixed sweep output, the fixed sweep input at the longest sweep output,
    the longest sweep input at the longest sweep output and at the longest output edge (the points
    whose decode runs over long padded prompts: the padded decode terms' context term rests on them,
    and a workload's padded batches decode up to that edge, so the term is measured where it is used,
    not extrapolated from a short output) and the longest input edge at the shortest output edge.
    None for continuous batching (vLLM never pads), speculative decoding
    (one request at a time) or batch 1."""
    m = cfg["measurement"]
    b = m["batch_size"]
    if "grid" not in cell.kinds or cell.variant.framework != "transformers" or cell.decoding in SPECULATIVE \
            or b < 2:
        return []
    shapes = {(i, m["sweep_fixed_output"]) for i in m["sweep_input_lengths"]}
    shapes.add((m["sweep_fixed_input"], max(m["sweep_output_lengths"])))
    shapes.add((max(m["sweep_input_lengths"]), max(m["sweep_output_lengths"])))
    shapes.add((max(m["sweep_input_lengths"]), max(cfg["bins"]["output"])))
    shapes.add((max(cfg["bins"]["input"]), min(cfg["bins"]["output"])))
    return [(i, o, b, PADDED) for i, o in sorted(shapes)]


def cells(cfg: dict) -> list[tuple[str, str, str]]:
    """Every (model, variant, decoding) combination the config asks for, in order, without repeats."""
    return list(cell_kinds(cfg))


def cell_kinds(cfg: dict) -> dict[tuple[str, str, str], tuple[str, ...]]:
    """Each (model, variant, decoding) cell and the point families it sweeps (union over the entries
    that name it)."""
    seen: dict[tuple[str, str, str], set[str]] = {}
    for cell in cfg["cells"]:
        for variant in cell["variants"]:
            for decoding in cell["decoding"]:
                seen.setdefault((cell["model"], variant, decoding), set()).update(cell["points"])
    return {key: tuple(k for k in ("grid", "sweep", "batch") if k in kinds) for key, kinds in seen.items()}


def tensor_parallel(variant: str) -> int:
    """Tensor-parallel size of a variant (``vllm-cudagraph-tp4`` -> 4; 1 without a suffix)."""
    return Variant.parse(variant).tensor_parallel


def cell_table(cfg: dict, hardware: str) -> list[Cell]:
    """The configured cells on ``hardware``, in config order, each with the point families it sweeps."""
    return [Cell.of(hardware, m, v, d, kinds) for (m, v, d), kinds in cell_kinds(cfg).items()]


def cell_options(cfg: dict) -> dict[tuple[str, str, str], dict]:
    """Each cell's own ``shape`` and ``batch_sizes`` (of its batch points) and ``prompts`` (a task
    workload's texts), from the entries that name it; two entries that give one cell different values
    are a config error."""
    seen: dict[tuple[str, str, str], dict] = {}
    for i, cell in enumerate(cfg["cells"]):
        given = {k: cell[k] for k in ("shape", "batch_sizes", "prompts") if cell.get(k) is not None}
        for variant in cell["variants"]:
            for decoding in cell["decoding"]:
                opts = seen.setdefault((cell["model"], variant, decoding), {})
                for k, v in given.items():
                    if opts.get(k, v) != v:
                        raise UserError(f"config error: cells[{i}].{k}: {cell['model']}/{variant}/{decoding} is "
                                        f"given {k} {opts[k]!r} by an earlier entry and {v!r} here")
                    opts[k] = v
    return seen


def cell_of(cfg: dict, hardware: str, model: str, variant: str, decoding: str) -> Cell:
    """A cell by its names; one the config does not name sweeps every family (``ALL_POINTS``)."""
    kinds = cell_kinds(cfg).get((model, variant, decoding), ALL_POINTS)
    return Cell.of(hardware, model, variant, decoding, kinds)


# The decoding settings each strategy uses (greedy: none).
DECODING_KEYS = {"beam": ("beam_width",), "temperature": ("temperature",), "top-p": ("top_p",),
                 "speculative": ("num_speculative_tokens",), "prompt-lookup": ("num_speculative_tokens",)}


def decoding_settings(cfg: dict, decoding: str) -> dict:
    """The ``decoding`` section's settings that a strategy uses: changing one touches only its cells."""
    return {k: cfg["decoding"][k] for k in DECODING_KEYS.get(decoding, ())}


def online_settings(cfg: dict, variant: Variant) -> dict:
    """The ``online`` section, for online variants only."""
    return cfg["online"] if variant.online else {}


def points_of(cfg: dict, cell: Cell) -> list[tuple[int, int, int, str]]:
    """Every point one cell measures: its families' (at its own ``shape`` where it has one) and its
    padded batches. A change re-measures only the cells whose points changed."""
    opts = cell_options(cfg).get(cell.key, {})
    return cell_points(cfg, cell.kinds, opts.get("shape"), opts.get("batch_sizes")) + padded_points(cfg, cell)


def cell_params(cfg: dict, cell: Cell) -> dict:
    """What a measurement job is handed (the measure_cell rule's params, computed once per cell):
    its points, the measurement protocol, its decoding settings and its online settings."""
    return {"points": points_of(cfg, cell), "measurement": cfg["measurement"],
            "decoding": decoding_settings(cfg, cell.decoding), "online": online_settings(cfg, cell.variant),
            "prompts": cell_prompts(cfg, cell)}


# The replay keys each metering job after the grid reads: the replay job its sample, runs and control
# points; the rate sweep only the sample (its requests are the replay's), so that choosing replay runs
# never re-runs the sweep.
REPLAY_JOB_KEYS = {"replay": ("n_requests", "seed", "runs", "min_metered_s", "max_runs", "control_points",
                              "control_repeats"), "serve": ("n_requests", "seed")}


def job_params(cfg: dict, cell: Cell, job: str) -> dict:
    """What a replay (``job="replay"``) or rate-sweep (``"serve"``) job of ``cell`` reads besides its input
    files and its model: the rule's params, so that changing any of it re-runs that job and nothing in it
    is read from elsewhere. The protocol (its meter, warm-up and seed), the cell's decoding and online
    settings, the replay keys it uses and the bins' top edges (the longest request it serves)."""
    return {"measurement": cfg["measurement"], "decoding": decoding_settings(cfg, cell.decoding),
            "online": online_settings(cfg, cell.variant),
            "replay": {k: cfg["replay"][k] for k in REPLAY_JOB_KEYS[job]},
            "top_edges": [cfg["bins"]["input"][-1], cfg["bins"]["output"][-1]]}


def cell_prompts(cfg: dict, cell: Cell) -> dict:
    """Where a cell's prompts come from: ``{"source": "pg19" | "random"}`` (the measurement section's),
    or a task workload's texts ``{"source": "task", "workload", "task", "file", "template"}``."""
    name = cell_options(cfg).get(cell.key, {}).get("prompts")
    if not name:
        return {"source": cfg["measurement"]["prompts"]}
    w = cfg["workloads"][name]
    return {"source": "task", "workload": name, "task": w["task"], "file": w["file"], "template": w["template"]}
