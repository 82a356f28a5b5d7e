"""``segclr experiment``: expand a grid of runs, train and score each, resumably.

An experiment file (``configs/experiments/*.yaml``)::

    name: paper_cpu
    seeds: [0, 1, 2]
    target_devices: [cirrus_like]
    reference: segclr_uda_ch_a         # the method the paired tests compare against
    base: {trainer: {max_steps: 400}}  # overrides for every cell
    methods:
      supervised: {objective: {mode: supervised}}
      ssl_finetune:                    # a two-stage method: pretrain, then finetune from it
        pretrain: {objective: {mode: ssl_pretrain}}
        objective: {mode: finetune}
      segclr_uda:                      # a grid: one method per combination, named segclr_uda_ch_a ...
        objective: {mode: segclr_uda}
        grid: {model.head: [ch, pool], data.pairs: [a, s, s+a]}
    amount: {0: segclr_dg, 1: segclr_uda_target1, 3: segclr_uda_ch_a}   # optional, for the report
    compare: [[segclr_uda_ch_a, upper_bound]]   # optional: paired tests beyond those against the baseline

Cells are methods x target devices x seeds. Each cell trains into
``OUT/runs/<method>/<target>/seed<k>-<config hash>/`` and is finished when its ``eval.json``
exists with the same config hash. The hash covers the whole config (and the pretraining
config) except what only changes the reporting (``COSMETIC_KEYS``), so changing a cell, e.g. its
steps, trains it afresh in a new folder instead of reusing an old model. A killed experiment
re-run skips finished cells and resumes an unfinished training from its last checkpoint. After
every cell the aggregates (``results.csv``, ``per_case.csv``) are rewritten, and at the end the
report (``RESULTS.md`` and figures).
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from segclr.config import ConfigError, RunConfig, fill_added, from_dict
from segclr.data.domains import DomainBank
from segclr.evaluation.benchmark import evaluate_domains, score_volumes
from segclr.experiment.cells import (cell_is_done, cell_path, cell_record, describe_machines, git_commit_cell,
                                     write_cell)
# the spec half lives in spec.py; its public names stay importable from here
from segclr.experiment.spec import (ADDED_KEYS, COSMETIC_KEYS, EVALUATE_ON, SPEC_KEYS, Cell,  # noqa: F401
                                    _merge, config_hash, expand_cells, expand_methods, load_spec,
                                    select_methods, stored_config)
from segclr.inference.postprocess import normalize_params
from segclr.inference.predict import Predictor
from segclr.io.atomic import atomic_write_text
from segclr.training.trainer import fit

RESULT_FIELDS = ["method", "target_device", "seed", "config_hash", "domain", "class", "dice_mean", "dice_pooled",
                 "train_seconds"]
CASE_FIELDS = ["method", "target_device", "seed", "domain", "class", "case", "dice", "n_ref", "n_pred"]
class StaleRunError(RuntimeError):
    """A run folder holds a model trained with another configuration."""


def _train(cfg: RunConfig, out: Path, bank: DomainBank, run_hash: str) -> float:
    """Train into ``out`` unless already done; resume an interrupted run. Returns seconds.

    ``out`` belongs to one config hash (``train.json`` records it). A folder that holds another
    hash's model or checkpoint is never reused.
    """
    record = out / "train.json"
    if record.is_file():
        done = json.loads(record.read_text())
        if done.get("config_hash") != run_hash:
            raise StaleRunError(f"{out}: holds a run of config {done.get('config_hash')}, not {run_hash}; "
                                f"move it away")
        return float(done["seconds"])
    if (out / "model.safetensors").is_file():
        # killed after the bundle but before train.json: the bundle's own config says whose it is
        from segclr.io.bundle import load_bundle
        from segclr.io.images import InputError

        try:
            _, meta = load_bundle(out / "model.safetensors")
        except InputError as err:
            raise StaleRunError(f"{out}: holds an unreadable model and no train.json ({err}); move it away") from None
        training = meta.get("training", {})
        if not _same_config(training.get("config"), cfg):
            raise StaleRunError(f"{out}: holds a model of another config (and no train.json); move it away")
        atomic_write_text(record, json.dumps({"seconds": training.get("seconds", 0.0),
                                              "steps": training.get("steps"), "config_hash": run_hash}))
        return float(training.get("seconds", 0.0))
    resume = (out / "checkpoints" / "last.ckpt").is_file()
    res = fit(cfg, out, resume=resume, bank=bank)
    atomic_write_text(record, json.dumps({"seconds": res.seconds, "steps": res.steps, "config_hash": run_hash}))
    return res.seconds


def _same_config(saved, cfg: RunConfig) -> bool:
    """Whether a bundle's stored training config is ``cfg``, keys the bundle predates read at their old
    behaviour (a bundle written before a key existed is not another config for lacking it)."""
    if not isinstance(saved, dict):
        return False
    try:
        return from_dict(fill_added(saved, saved_run=True)) == cfg
    except ConfigError:
        return False


def bank_for(banks: dict, cfg: RunConfig) -> DomainBank:
    """The (cached) domain bank a config trains and is scored on."""
    key = (cfg.data.dataset, cfg.data.simulation_seed, cfg.data.geometry)
    if key not in banks:
        banks[key] = DomainBank(key[1], dataset=key[0] or None, geometry=key[2])
    return banks[key]


def evaluate_validation(predictor: Predictor, bank: DomainBank, cfg: RunConfig, progress: bool = False,
                        domains: list[str] | None = None) -> dict:
    """domain -> summary over the held-out validation patients (``data.val_patients``) of the source domain,
    or of each of ``domains`` (the same patients rendered as those devices).

    Recipe searches score here, so the test patients are never looked at while choosing.
    """
    return {d: score_volumes(predictor, d, validation_volumes(bank, cfg, d), progress, f"validate {d}")
            for d in domains or [cfg.data.source_domain]}


def validation_volumes(bank: DomainBank, cfg: RunConfig, domain: str | None = None) -> list:
    """The held-out validation patients' volumes (``data.val_patients``) of the source domain, or rendered as
    ``domain``."""
    if not cfg.data.val_patients:
        raise ConfigError("evaluate_on: validation needs data.val_patients (source patients held out of training)")
    held_out = set(cfg.data.val_patients)
    return [v for v in bank.volumes(domain or cfg.data.source_domain, "source_train") if v.patient in held_out]


def trained_model(rec: dict, runs: list[Path]) -> Path | None:
    """A committed cell record's trained model, searched under each of ``runs`` (an experiment's ``--out/runs``,
    laid out ``<method>/<target>/seed<N>-<hash>/train/model.safetensors``); None when no folder has it."""
    cfg = from_dict(rec["config"])
    run_key = Cell(rec["method"], rec["target_device"], rec["seed"], cfg, hash=rec["config_hash"]).run_key
    return next((m for r in runs if (m := Path(r) / run_key / "train" / "model.safetensors").is_file()), None)


def eval_device(cfg: RunConfig) -> str:
    """Score a cell on the GPU it trained on (many volumes: on a GPU machine the CPU would dominate)."""
    import torch

    gpu = cfg.trainer.accelerator in ("auto", "gpu", "cuda")
    return "cuda" if gpu and torch.cuda.is_available() else "cpu"


def score_model(bundle: Path, bank: DomainBank, cfg: RunConfig, on: str = "test", progress: bool = False,
                postprocess: dict | None = None) -> dict:
    """domain -> summary of a cell's trained model: on the test patients of ``cfg.data.eval_domains``, or on
    the validation split (``on="validation"``), on the device it trained on. ``postprocess``
    (``{"min_component_px": .., "retina_only": ..}``) replaces the bundle's own post-processing."""
    predictor = Predictor(bundle, device=eval_device(cfg))
    if postprocess is not None:
        predictor.postprocess_params = normalize_params(postprocess)
    return (evaluate_validation(predictor, bank, cfg, progress) if on == "validation"
            else evaluate_domains(predictor, bank, cfg.data.eval_domains, progress=progress))


def run_cell(cell: Cell, run_dir: Path, bank: DomainBank, progress: bool = False, on: str = "test") -> dict:
    seconds = 0.0
    cfg = cell.config
    if cell.pretrain is not None:
        same = (cell.pretrain.data.dataset, cell.pretrain.data.simulation_seed, cell.pretrain.data.geometry) == (
            cfg.data.dataset, cfg.data.simulation_seed, cfg.data.geometry)
        pre_bank = bank if same else bank_for({}, cell.pretrain)
        seconds += _train(cell.pretrain, run_dir / "pretrain", pre_bank, config_hash(cell.pretrain))
        cfg = from_dict(_merge(cfg.to_dict(),
                               {"objective": {"init_from": str(run_dir / "pretrain" / "model.safetensors")}}))
    seconds += _train(cfg, run_dir / "train", bank, cell.hash)
    summaries = score_model(run_dir / "train" / "model.safetensors", bank, cfg, on, progress)
    result = {
        "method": cell.method, "target_device": cell.target, "seed": cell.seed, "config_hash": cell.hash,
        "train_seconds": round(seconds, 1), "domains": summaries,
    }
    atomic_write_text(run_dir / "eval.json", json.dumps(result))
    return result


def _rows(result: dict) -> tuple[list[dict], list[dict]]:
    rows, cases = [], []
    for domain, summary in result["domains"].items():
        for label, m in summary["mean"].items():
            rows.append({
                "method": result["method"], "target_device": result["target_device"], "seed": result["seed"],
                "config_hash": result["config_hash"], "domain": domain, "class": m["name"],
                "dice_mean": m["Dice"], "dice_pooled": m["pooled_Dice"], "train_seconds": result["train_seconds"],
            })
        for case in summary["metric_per_case"]:
            for label, m in case["metrics"].items():
                cases.append({
                    "method": result["method"], "target_device": result["target_device"], "seed": result["seed"],
                    "domain": domain, "class": summary["mean"][label]["name"], "case": case["reference_file"],
                    "dice": m["Dice"], "n_ref": m["n_ref"], "n_pred": m["n_pred"],
                })
    return rows, cases


def _write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def default_cells_dir(spec: dict, out: Path, report_dir: Path | None) -> Path:
    """Where the committed cell files live: the spec's ``cells``, else ``<report dir or out>/cells``."""
    if spec.get("cells"):
        return Path(spec["cells"])
    return Path(report_dir or out) / "cells"


def cell_file(cells_dir: Path, cell: Cell) -> Path:
    return cell_path(cells_dir, cell.method, cell.target, cell.seed)


def is_done(cells_dir: Path, cell: Cell) -> bool:
    """A cell is done when its committed file holds its config hash."""
    return cell_is_done(cell_file(cells_dir, cell), cell.hash)


def record_cell(cells_dir: Path, cell: Cell, result: dict) -> Path:
    rows, cases = _rows(result)
    return write_cell(cell_file(cells_dir, cell), method=cell.method, target=cell.target, seed=cell.seed,
                      config_hash=cell.hash, config=cell.config.to_dict(),
                      pretrain=cell.pretrain.to_dict() if cell.pretrain else None,
                      train_seconds=result["train_seconds"], rows=rows, cases=cases)


def done_records(cells_dir: Path, cells: list[Cell]) -> list[dict]:
    """The records of the finished cells (file holding the cell's hash), each file read once."""
    records = (cell_record(cell_file(cells_dir, cell), cell.hash) for cell in cells)
    return [r for r in records if r is not None]


def aggregate(out: Path, records: list[dict]) -> tuple[Path, Path]:
    """Rewrite ``results.csv`` and ``per_case.csv`` in ``out`` from the finished cells' records."""
    rows = [row for record in records for row in record["rows"]]
    cases = [case for record in records for case in record["cases"]]
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "results.csv", RESULT_FIELDS, rows)
    _write_csv(out / "per_case.csv", CASE_FIELDS, cases)
    return out / "results.csv", out / "per_case.csv"


def run_experiment(spec_path: str | Path, out_dir: str | Path, seeds: list[int] | None = None,
                   report_dir: str | Path | None = None, dry_run: bool = False,
                   report_only: bool = False, cells_dir: str | Path | None = None,
                   git_commit: bool = False, methods: list[str] | None = None) -> list[Cell]:
    """Train and score every cell not yet done, recording each in ``cells_dir``; then write the report.

    With ``git_commit`` each finished cell's file is committed at once (only that file), so an
    interrupted study continues from any clone. ``methods`` (shell patterns) trains only those rows;
    the report still covers every done cell.
    """
    from segclr.experiment.report import write_report

    spec = load_spec(spec_path)
    cells = expand_cells(spec, seeds)
    todo = select_methods(cells, methods)
    out = Path(out_dir)
    report = Path(report_dir) if report_dir else out
    cells_dir = Path(cells_dir) if cells_dir else default_cells_dir(spec, out, report)
    if dry_run:
        for cell in todo:
            state = "done" if is_done(cells_dir, cell) else "todo"
            print(f"{state:5} {cell.key}  ({cell.config.objective.mode}, {cell.config.trainer.max_steps} steps, "
                  f"hash {cell.hash})")
        return todo
    out.mkdir(parents=True, exist_ok=True)
    banks: dict[tuple, DomainBank] = {}  # one per (dataset, simulation seed, geometry), rendered once
    start = time.perf_counter()
    for i, cell in enumerate([] if report_only else todo, 1):
        if is_done(cells_dir, cell):
            print(f"[{i}/{len(todo)}] {cell.key}: done ({cell_file(cells_dir, cell)}), skipped", flush=True)
            continue
        print(f"[{i}/{len(todo)}] {cell.key}: training ({cell.config.objective.mode})", flush=True)
        result = run_cell(cell, out / "runs" / cell.run_key, bank_for(banks, cell.config),
                          on=spec.get("evaluate_on", "test"))
        path = record_cell(cells_dir, cell, result)
        if git_commit:
            git_commit_cell(path, f"study {spec['name']}: cell {cell.key} ({cell.hash}, "
                                  f"{result['train_seconds']:.0f} s of training)")
    records = done_records(cells_dir, cells)
    results, per_case = aggregate(out, records)
    wall = time.perf_counter() - start
    seeds_done = sorted({r["seed"] for r in records}) or sorted({c.seed for c in cells})
    write_report(spec, results, per_case, report, wall_seconds=wall, seeds=seeds_done,
                 command_line=f"segclr experiment {spec_path} --out {out_dir}"
                              + (f" --report-dir {report_dir}" if report_dir else ""),
                 status=f"{len(records)} of {len(cells)} cells finished", machines=describe_machines(records))
    return cells
