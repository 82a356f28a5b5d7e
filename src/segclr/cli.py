"""The ``segclr`` command: thin wrappers over the library.

    segclr demo      [--out DIR]                      baseline vs SegCLR UDA, report folder
    segclr fit       --config YAML --out DIR [--set section.key=value ...]
    segclr fit       --out DIR --resume [--set trainer.max_steps=N]    continue a run with its own config
    segclr evaluate  --checkpoint CKPT --images PATH [--masks PATH] [--out summary.json]
    segclr evaluate  --pred PATH --ref PATH [--out summary.json]      score label volumes (Dice, HD95)
    segclr predict   [--checkpoint CKPT] --input PATH --output PATH [--overwrite] [--report [HTML]]
    segclr models    [--card NAME]                    the packaged models and their cards
    segclr bench     [--quick] [--device cuda] [--out DIR]   speed benchmark of this machine
    segclr export    --checkpoint CKPT --format torchscript|onnx [--out PATH]
    segclr simulate  --device NAME --out DIR [--seed N]

Errors in user input (files, folders, configs) print one line naming the file or key and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segclr import __version__
from segclr.config import MODES, ConfigError
from segclr.io.images import InputError
from segclr.training.errors import NonFiniteError

EXAMPLES = """examples:
  segclr demo --out segclr-demo
  segclr fit --config configs/segclr_uda.yaml --out runs/uda --set trainer.max_steps=300 --set model.head=pool
  segclr fit --out runs/uda --resume                                         # the run's own config.yaml
  segclr fit --out runs/uda --resume --set trainer.max_steps=3000            # train a finished run longer
  segclr simulate --device cirrus-like --patients 9,10 --out sim/cirrus_test          # the test patients only
  segclr evaluate --checkpoint runs/uda/model.safetensors --images sim/cirrus_test/images --masks sim/cirrus_test/masks
  segclr evaluate --checkpoint runs/mine --images my_dataset.yaml                 # its role: test volumes
  segclr predict --checkpoint runs/uda/model.safetensors --input my_bscans/ --output my_masks/
  segclr predict --checkpoint runs/uda/model.safetensors --input retouch/ --output pred/      # oct.mhd -> pred/CASE.mhd
  segclr evaluate --pred pred/ --ref retouch/ --out summary.json                             # reference.mhd
  segclr predict --input retouch/ --output pred/ --report        # packaged model; pred/report.html
  segclr models
  segclr bench --quick --out bench-out
  segclr export --checkpoint runs/uda/model.safetensors --format onnx
  segclr simulate --preview docs/devices.png
  segclr experiment configs/experiments/paper_cpu.yaml --out runs/paper_cpu --report-dir docs/results
"""


def _bars() -> bool:
    """Progress bars only in a terminal: in a log file their carriage returns smear into one line."""
    return sys.stderr.isatty()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segclr",
        description="Cross-device OCT fluid segmentation with SegCLR (joint Dice + contrastive training).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"segclr {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="train baseline + SegCLR UDA on the embedded data and write a report",
                       description="Train the supervised baseline and SegCLR UDA (Cch head, Pa pairs) on real "
                                   "Spectralis source data with one simulated target device, evaluate both on the "
                                   "test patients of every domain and write a report folder (about 11 min on 2 idle "
                                   "CPU cores, measured: README 'Demo result').")
    d.add_argument("--out", default="segclr-demo", help="report folder (default: %(default)s)")
    d.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    d.add_argument("--steps", type=int, default=None, help="training steps per method (default: the demo's 800)")
    d.add_argument("--target", default=None, help="simulated target device (default: cirrus_like)")

    f = sub.add_parser("fit", help="train one run from a YAML config",
                       description=f"Train one mode ({', '.join(MODES)}; one YAML each in configs/) from a YAML "
                                   "config; any value can be overridden with --set section.key=value (YAML syntax). "
                                   "--resume continues the run in --out with its own config.yaml: a --config or "
                                   "--set that changes a training-relevant value is refused, except a larger "
                                   "trainer.max_steps given with --set (the cosine schedule is stretched to it).",
                       epilog="override examples: --set objective.lambda_sup=10 --set data.pairs=s+a "
                              "--set data.target_domains=[topcon_like] --set trainer.devices=2")
    f.add_argument("--config", type=Path, default=None,
                   help="YAML config (configs/<mode>.yaml); defaults if omitted; with --resume: the run's config.yaml")
    f.add_argument("--out", type=Path, required=True, help="run folder for checkpoints, logs and the model bundle")
    f.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. trainer.max_steps=200 (repeatable)")
    f.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint, with its own config.yaml")

    e = sub.add_parser("evaluate", help="Dice (and HD95 for volumes) of a model or of predicted masks",
                       description="With --checkpoint and a dataset file (.yaml, as for fit's data.dataset) in "
                                   "--images: score the volumes of its test role (--role), per domain. "
                                   "With --checkpoint and a folder of PNG/TIFF B-scans in --images: score every image "
                                   "against the mask of the same name in --masks (nnU-Net Dice rule per B-scan, plus "
                                   "pooled Dice). With --checkpoint and volumes in --images (a file, a folder of "
                                   ".mhd/.nii.gz, a RETOUCH folder or an nnU-Net dataset): predict them and score "
                                   "against --masks or the dataset's own labels. With --pred and --ref: score "
                                   "predicted label volumes against references (volume and per-B-scan Dice, HD95 in "
                                   "mm). Prints a table and optionally writes an nnU-Net-like summary.json.")
    e.add_argument("--checkpoint", type=Path, default=None,
                   help="model.safetensors written by fit (or its run folder)")
    e.add_argument("--images", type=Path, default=None,
                   help="B-scan folder, volume file, folder or dataset, or a dataset file (.yaml: scores its test role)")
    e.add_argument("--role", default="test", choices=["test", "source_train", "target_train"],
                   help="with a dataset file: the role to score (default: %(default)s, the held-out volumes)")
    e.add_argument("--masks", type=Path, default=None,
                   help="reference masks (required for a B-scan folder; optional for datasets with labels)")
    e.add_argument("--pred", type=Path, default=None, help="predicted label volume(s): file or folder")
    e.add_argument("--ref", type=Path, default=None,
                   help="reference label volume(s): file, folder, RETOUCH folder or nnU-Net dataset")
    e.add_argument("--labels", default=None, metavar="1=IRF,2=SRF",
                   help="foreground labels to score with --pred/--ref (default: from dataset.json, RETOUCH, "
                        "or the labels present)")
    e.add_argument("--batch-size", type=_positive_int, default=8,
                   help="B-scans per forward pass for volumes (default: %(default)s)")
    _add_spacing_argument(e)
    _add_postprocess_argument(e)
    e.add_argument("--out", type=Path, default=None, help="summary.json to write")

    pr = sub.add_parser("predict", help="segment B-scans or whole volumes",
                        description="A folder of PNG/TIFF B-scans: one mask PNG per B-scan (0 background, 1.. classes) "
                                    "under --output, same file names, at the input's size. A volume file (.mhd, .mha, "
                                    ".nii, .nii.gz; vendor .e2e/.fds/.fda/.img with segclr[vendor]), a folder of them, "
                                    "a RETOUCH folder (CASE/oct.mhd) or an nnU-Net raw dataset: one label volume per "
                                    "case in the input's format and geometry (vendor files: .nii.gz), plus "
                                    "fluid_volumes.csv (nanoliters and affected B-scans per class). Inputs are never "
                                    "modified; existing outputs are refused without --overwrite.")
    pr.add_argument("--checkpoint", type=Path, default=None,
                    help="model.safetensors written by fit (or its run folder); default: the packaged default "
                         "model (see `segclr models`; research use only)")
    pr.add_argument("--input", type=Path, required=True,
                    help="B-scan file or folder (PNG/TIFF/JPEG), volume file, folder or dataset")
    pr.add_argument("--output", type=Path, required=True,
                    help="output folder (or, for one volume, a file such as pred.mhd or pred.nii.gz)")
    pr.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    pr.add_argument("--batch-size", type=_positive_int, default=8,
                    help="B-scans per forward pass (default: %(default)s)")
    pr.add_argument("--csv", type=Path, default=None,
                    help="fluid-volume CSV (default for volumes: OUTPUT/fluid_volumes.csv; B-scan folders: none)")
    _add_spacing_argument(pr)
    _add_postprocess_argument(pr)
    pr.add_argument("--domains", type=Path, default=None,
                    help="case -> domain mapping (.json or .csv) for an nnU-Net dataset (default: its domains.json)")
    pr.add_argument("--report", nargs="?", const="", default=None, metavar="HTML",
                    help="also write a self-contained HTML report (per volume: fluid in nl, affected B-scans, "
                         "en-face thickness map, the 3 B-scans with most fluid outlined, domain-shift check; "
                         "the model card's summary and a sortable table of all volumes); default path: "
                         "OUTPUT/report.html (or <output stem>_report.html next to a single output file)")

    mo = sub.add_parser("models", help="list the models packaged with segclr (and their model cards)",
                        description="List the models shipped inside the package: status, what each was trained "
                                    "on, its measured Dice per domain, and the research-use notice. "
                                    "`segclr predict` uses the default one when --checkpoint is omitted.")
    mo.add_argument("--card", metavar="NAME", default=None, help="print this packaged model's full model card")

    # listed here for `segclr --help`; main() hands every word after `bench` to segclr.bench's own parser
    sub.add_parser("bench", help="measure training and inference speed on this machine (segclr bench --help)",
                   add_help=False)

    x = sub.add_parser("export", help="export a model bundle to TorchScript or ONNX",
                       description="Write the bundle's UNet as TorchScript (.pt) or ONNX (.onnx, needs segclr[onnx]), "
                                   "check that it reproduces the PyTorch output, and store the preprocessing in its "
                                   "metadata (see model_card.md next to the bundle).")
    x.add_argument("--checkpoint", type=Path, required=True,
                   help="model.safetensors written by fit (or its run folder)")
    x.add_argument("--format", required=True, choices=["torchscript", "onnx"])
    x.add_argument("--out", type=Path, default=None, help="output file (default: next to the checkpoint)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing export")

    x = sub.add_parser("experiment", help="run a grid of fits + evaluations and write the study report",
                       description="Expand an experiment file (methods x heads x pairs x target devices x seeds), "
                                   "train and score every cell, skip finished cells (resumable after a kill), and "
                                   "write results.csv, per_case.csv and RESULTS.md with figures.")
    x.add_argument("spec", type=Path, help="experiment YAML, e.g. configs/experiments/paper_cpu.yaml")
    x.add_argument("--out", type=Path, default=Path("runs/experiment"), help="runs and aggregates (default: %(default)s)")
    x.add_argument("--seeds", type=int, nargs="+", default=None, help="override the file's seeds")
    x.add_argument("--report-dir", type=Path, default=None, help="where RESULTS.md and figures go (default: --out)")
    x.add_argument("--dry-run", action="store_true", help="list the cells and whether each is done, train nothing")
    x.add_argument("--report-only", action="store_true",
                   help="train nothing; aggregate the finished cells and rewrite the report")
    x.add_argument("--cells", type=Path, default=None, metavar="DIR",
                   help="where each finished cell's small JSON record goes; a cell whose record holds its config "
                        "hash is skipped (default: the file's 'cells' key, else REPORT_DIR/cells)")
    x.add_argument("--methods", nargs="+", default=None, metavar="PATTERN",
                   help="train only these rows (shell patterns, e.g. 'supervised*'); the report covers every done cell")
    x.add_argument("--git-commit", action="store_true",
                   help="commit each cell's record as soon as it finishes (only that file), so the next "
                        "session or machine continues where this one stopped")

    s = sub.add_parser("simulate", help="render the embedded data as a simulated OCT device",
                       description="Write the embedded Duke DME B-scans rendered as a simulated device "
                                   "(images/, masks/, index.csv; same layout as the embedded data).")
    s.add_argument("--device", help="device name from devices.yaml (e.g. cirrus-like, topcon-like)")
    s.add_argument("--out", type=Path, help="dataset folder to create (must not exist or be empty)")
    s.add_argument("--seed", type=int, default=0, help="simulation seed (default: %(default)s)")
    s.add_argument("--patients", default=None, metavar="9,10",
                   help="write only these Duke patients (1-5 source train, 6-8 target train, 9-10 test); "
                        "default: all 10, training patients included")
    s.add_argument("--geometry", choices=["native", "source"], default="native",
                   help="native: each device's own pixel grid, depth range and field of view, as a real export "
                        "(spacing in index.csv and volume.json); source: resampled back to the Spectralis grid "
                        "(default: %(default)s)")
    s.add_argument("--preview", type=Path, metavar="PNG",
                   help="instead of a dataset, draw one B-scan as every domain side by side into PNG, each on its "
                        "own grid at true physical aspect (with --geometry native)")
    return p


def _cmd_demo(args) -> int:
    from segclr.experiment.demo import run_demo

    run_demo(args.out, seed=args.seed, steps=args.steps, target=args.target)
    print(f"report written to {args.out}/ (results.json, results.md, overlays_*.png, <method>/)")
    return 0


def _cmd_fit(args) -> int:
    from segclr.config import load_config
    from segclr.training.trainer import fit

    if args.resume:
        from segclr.training.checkpointing import resume_config

        cfg = resume_config(args.out, args.config, args.overrides)
    else:
        cfg = load_config(args.config, args.overrides)
    res = fit(cfg, args.out, resume=args.resume)
    print(f"trained {res.steps} steps in {res.seconds:.0f} s; model bundle: {res.bundle}")
    return 0


def _parse_labels(text: str | None) -> dict[int, str] | None:
    if not text:
        return None
    labels = {}
    for item in text.split(","):
        key, _, name = item.partition("=")
        try:
            labels[int(key)] = name.strip() or f"class{int(key)}"
        except ValueError:
            raise InputError(f"--labels: {item!r} is not LABEL=NAME (e.g. 1=IRF,2=SRF,3=PED)") from None
    return labels


def _add_spacing_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spacing", type=float, nargs=2, default=None, metavar=("ROW_UM", "COL_UM"),
                        help="pixel spacing of the input B-scans in um (per row, per column), e.g. 1.95 11.72 for "
                             "a Cirrus cube; overrides the volume header or volume.json. The B-scans are resampled "
                             "to the model's training spacing; with no spacing known the height rule applies "
                             "(one warning)")


def _add_postprocess_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-postprocess", dest="postprocess", action="store_false",
                        help="write/score the network's raw masks: skip the post-processing stored in the model "
                             "bundle (removal of fluid components below its min_component_px and, with its "
                             "retina_only, of fluid outside the retina); bundles without these settings have none")


def _cmd_evaluate(args) -> int:
    from segclr.experiment.heldout import is_dataset_file, training_split_note
    from segclr.io.cases import is_volume_input

    if args.pred is not None or args.ref is not None:
        from segclr.evaluation.volume_metrics import evaluate_volume_folders, format_volume_summary

        if args.pred is None or args.ref is None:
            raise InputError("evaluate --pred and --ref go together")
        if args.checkpoint is not None or args.images is not None:
            raise InputError("evaluate takes either --pred/--ref or --checkpoint/--images, not both")
        summary = evaluate_volume_folders(args.pred, args.ref, args.out, labels=_parse_labels(args.labels),
                                          progress=_bars())
        print(format_volume_summary(summary))
    elif args.checkpoint is not None and args.images is not None and is_dataset_file(args.images):
        from segclr.experiment.heldout import evaluate_dataset, format_dataset_summary

        summary = evaluate_dataset(args.checkpoint, args.images, role=args.role, out=args.out, progress=_bars(),
                                   postprocess=args.postprocess)
        print(format_dataset_summary(summary))
    elif args.checkpoint is not None and args.images is not None and is_volume_input(args.images):
        from segclr.evaluation.volume_metrics import evaluate_checkpoint_on_volumes, format_volume_summary

        summary = evaluate_checkpoint_on_volumes(args.checkpoint, args.images, args.masks, args.out,
                                                 batch_size=args.batch_size, progress=_bars(),
                                                 spacing_um=args.spacing, postprocess=args.postprocess)
        print(format_volume_summary(summary))
    elif args.checkpoint is not None and args.images is not None:
        from segclr.evaluation.evaluate import evaluate_folder, format_summary

        if args.masks is None:
            raise InputError(f"{args.images}: a folder of B-scans needs --masks")
        summary = evaluate_folder(args.checkpoint, args.images, args.masks, args.out, progress=_bars(),
                                  spacing_um=args.spacing, postprocess=args.postprocess)
        print(format_summary(summary))
        note = training_split_note(args.images)
        if note:
            print(note, file=sys.stderr)
    else:
        raise InputError("evaluate needs --checkpoint with --images (and --masks), or --pred with --ref")
    if args.out:
        print(f"summary written to {args.out}")
    return 0


def _predict_report_path(args) -> Path | None:
    """``--report``'s file, refused up front if it exists (without --overwrite) or is an input."""
    if args.report is None:
        return None
    from segclr.inference.html_report import report_path

    path = report_path(args.output, args.report or None)
    if path.exists() and not args.overwrite:
        raise InputError(f"{path}: report exists; pass --overwrite")
    if path.resolve() == args.input.resolve():
        raise InputError(f"{path}: would overwrite the input; choose another --report")
    return path


def _report_run(args) -> dict:
    return {"input": str(args.input), "output": str(args.output), "model": str(args.checkpoint)}


def _cmd_predict(args) -> int:
    from segclr.io.cases import is_volume_input

    if args.checkpoint is None:
        from segclr.inference.packaged import default_model

        packaged = default_model()
        args.checkpoint = packaged.bundle
        print(f"no --checkpoint: using the packaged model {packaged.name} ({packaged.status}; research use only, "
              f"not for diagnosis; `segclr models` shows its card)", file=sys.stderr)
    report = _predict_report_path(args)
    if is_volume_input(args.input):
        from segclr.inference.volumes import format_fluid_table, predict_volumes

        res = predict_volumes(args.checkpoint, args.input, args.output, overwrite=args.overwrite,
                              batch_size=args.batch_size, csv_path=args.csv, domain_map=args.domains,
                              progress=_bars(), spacing_um=args.spacing, postprocess=args.postprocess)
        print(format_fluid_table(res.rows, res.classes))
        print(f"wrote {len(res.outputs)} label volumes to {args.output}; fluid volumes in {res.csv}")
        if report is not None:
            from segclr.inference.html_report import report_volumes

            report_volumes(report, res.rows, res.classes, args.checkpoint, run=_report_run(args), progress=_bars())
            print(f"report: {report}")
        return 0
    from segclr.io.bscans import BSCAN_SUFFIXES

    if args.input.is_file() and args.input.suffix.lower() in BSCAN_SUFFIXES:  # one B-scan file
        from segclr.inference.volumes import predict_bscan_file

        res = predict_bscan_file(args.checkpoint, args.input, args.output, overwrite=args.overwrite,
                                 csv_path=args.csv, spacing_um=args.spacing, postprocess=args.postprocess)
        print(f"wrote mask {res.outputs[0]}" + (f"; fluid volumes in {res.csv}" if res.csv else ""))
        if report is not None:
            _bscan_report(report, args, [args.input], res.outputs, res.rows)
        return 0
    if args.csv is not None:
        from segclr.inference.volumes import predict_bscan_folder

        res = predict_bscan_folder(args.checkpoint, args.input, args.output, args.csv, overwrite=args.overwrite,
                                   progress=_bars(), spacing_um=args.spacing, postprocess=args.postprocess)
        print(f"wrote {len(res.outputs)} masks to {args.output}; fluid volumes in {res.csv}")
        written, rows = res.outputs, res.rows
    else:
        from segclr.inference.predict import predict_folder

        written = predict_folder(args.checkpoint, args.input, args.output, overwrite=args.overwrite,
                                 progress=_bars(), spacing_um=args.spacing, postprocess=args.postprocess)
        print(f"wrote {len(written)} masks to {args.output}")
        rows = []
    if report is not None:
        from segclr.io.bscans import list_bscans

        _bscan_report(report, args, list_bscans(args.input), written, rows)
    return 0


def _bscan_report(report: Path, args, images: list[Path], masks: list[Path], rows: list[dict]) -> None:
    """``--report`` for a B-scan folder or file: one volume; spacing from the input's volume.json."""
    import numpy as np

    from segclr.inference.html_report import report_bscans
    from segclr.io.bscans import read_sidecar
    from segclr.io.volumes import Volume

    folder = args.input if args.input.is_dir() else args.input.parent
    side = read_sidecar(folder)
    spacing = Volume(np.zeros((1, 1, 1)), side["spacing_mm"]).spacing_mm if side.get("spacing_mm") else None
    case = args.input.name if args.input.is_dir() else args.input.stem
    report_bscans(report, case, images, masks, args.checkpoint, spacing, rows[0] if rows else None,
                  run=_report_run(args))
    print(f"report: {report}")


def _cmd_models(args) -> int:
    from segclr.inference.packaged import format_models, list_models

    models = list_models()
    if args.card:
        chosen = next((m for m in models if m.name == args.card), None)
        if chosen is None:
            raise InputError(f"--card {args.card}: no packaged model of that name "
                             f"(packaged: {', '.join(m.name for m in models) or 'none'})")
        card = chosen.folder / "model_card.md"
        print(card.read_text() if card.is_file() else f"{chosen.name}: {chosen.status}; no model card yet")
        return 0
    print(format_models(models))
    return 0


def _cmd_bench(argv: list[str]) -> int:
    """`segclr bench ...`: the speed benchmark of segclr.bench (GEMM limit, training, data path, inference,
    memory, threads), with its own options (segclr bench --help)."""
    from segclr.bench.driver import main as bench_main

    bench_main(argv, prog="segclr bench")
    return 0


def _cmd_export(args) -> int:
    from segclr.inference.export import export_model

    res = export_model(args.checkpoint, args.format, args.out, overwrite=args.overwrite)
    print(f"wrote {res.path} ({res.format}); max |exported - PyTorch| = {res.max_abs_diff:.2g} on a check batch")
    if res.card:
        print(f"model card: {res.card}")
    return 0


def _parse_patients(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise InputError(f"--patients {text!r}: expected patient numbers like 9,10") from None


def _cmd_simulate(args) -> int:
    from segclr.data.export import export_domain

    if args.preview:
        from segclr.evaluation.report import domain_preview

        domain_preview(args.preview, seed=args.seed, geometry=args.geometry)
        print(f"wrote {args.preview}")
        return 0
    if not args.device or not args.out:
        raise InputError("simulate needs --device and --out (or --preview PNG)")
    n = export_domain(args.device, args.out, seed=args.seed, patients=_parse_patients(args.patients),
                      progress=_bars(), geometry=args.geometry)
    print(f"wrote {n} B-scans to {args.out}")
    return 0


def _cmd_experiment(args) -> int:
    from segclr.experiment.runner import run_experiment

    cells = run_experiment(args.spec, args.out, seeds=args.seeds, report_dir=args.report_dir, dry_run=args.dry_run,
                           report_only=args.report_only, cells_dir=args.cells, git_commit=args.git_commit,
                           methods=args.methods)
    if args.dry_run:
        from segclr.experiment.estimate import format_estimate
        from segclr.experiment.runner import default_cells_dir, is_done, load_spec

        cells_dir = args.cells or default_cells_dir(load_spec(args.spec), args.out, args.report_dir)
        print(format_estimate(cells, [is_done(cells_dir, c) for c in cells]))
    else:
        print(f"results in {args.out}/results.csv; report in {args.report_dir or args.out}/RESULTS.md")
    return 0


COMMANDS = {"demo": _cmd_demo, "fit": _cmd_fit, "evaluate": _cmd_evaluate, "predict": _cmd_predict,
            "simulate": _cmd_simulate, "export": _cmd_export, "experiment": _cmd_experiment,
            "models": _cmd_models}


def _unparsed(parser: argparse.ArgumentParser, args, extra: list[str]) -> None:
    """Extra words on the command line: ``--set key value`` gets the ``key=value`` hint."""
    spaced = [o for o in getattr(args, "overrides", []) if "=" not in o]
    if spaced and extra:
        parser.exit(2, f"segclr {args.command}: error: --set {spaced[0]} {extra[0]}: write --set "
                       f"{spaced[0]}={extra[0]} (section.key=value, no spaces around '=')\n")
    parser.error(f"unrecognized arguments: {' '.join(extra)}")


def main(argv: list[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["bench"]:
        return _cmd_bench(words[1:])
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _unparsed(parser, args, extra)
    try:
        return COMMANDS[args.command](args)
    except (InputError, ConfigError) as err:
        print(f"segclr {args.command}: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteError as err:
        print(f"segclr {args.command}: training stopped: {err}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
