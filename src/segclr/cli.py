"""The ``segclr`` command: thin wrappers over the library.

    segclr demo      [--out DIR]                      baseline vs SegCLR UDA, report folder
    segclr fit       --config YAML --out DIR [--set section.key=value ...] [--resume]
    segclr evaluate  --checkpoint CKPT --images DIR --masks DIR [--out summary.json]
    segclr predict   --checkpoint CKPT --input DIR --output DIR [--overwrite]
    segclr simulate  --device NAME --out DIR [--seed N]

Errors in user input (files, folders, configs) print one line naming the file or key and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segclr import __version__
from segclr.config import ConfigError
from segclr.io.images import InputError

EXAMPLES = """examples:
  segclr demo --out segclr-demo
  segclr fit --config configs/segclr_uda.yaml --out runs/uda --set trainer.max_steps=300 --set model.head=pool
  segclr fit --config configs/segclr_uda.yaml --out runs/uda --resume
  segclr evaluate --checkpoint runs/uda/model.safetensors --images sim/cirrus_like/images --masks sim/cirrus_like/masks
  segclr predict --checkpoint runs/uda/model.safetensors --input my_bscans/ --output my_masks/
  segclr simulate --device cirrus-like --out sim/cirrus_like
  segclr simulate --preview docs/devices.png
"""


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
                                   "test patients of every domain and write a report folder (about 10 min on 2 CPU cores).")
    d.add_argument("--out", default="segclr-demo", help="report folder (default: %(default)s)")
    d.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    d.add_argument("--steps", type=int, default=None, help="training steps per method (default: the demo's 800)")
    d.add_argument("--target", default=None, help="simulated target device (default: cirrus_like)")

    f = sub.add_parser("fit", help="train one run from a YAML config",
                       description="Train one mode (supervised, upper_bound, segclr_uda, segclr_dg) from a YAML "
                                   "config; any value can be overridden with --set section.key=value (YAML syntax).",
                       epilog="override examples: --set objective.lambda_sup=10 --set data.pairs=s+a "
                              "--set data.target_domains=[topcon_like] --set trainer.devices=2")
    f.add_argument("--config", type=Path, default=None, help="YAML config (configs/<mode>.yaml); defaults if omitted")
    f.add_argument("--out", type=Path, required=True, help="run folder for checkpoints, logs and the model bundle")
    f.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. trainer.max_steps=200 (repeatable)")
    f.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")

    e = sub.add_parser("evaluate", help="Dice of a model on a folder of B-scans with masks",
                       description="Score every image in --images against the mask of the same name in --masks "
                                   "(nnU-Net Dice rule per B-scan, plus pooled Dice); prints a table and optionally "
                                   "writes an nnU-Net-like summary.json.")
    e.add_argument("--checkpoint", type=Path, required=True, help="model.safetensors written by fit")
    e.add_argument("--images", type=Path, required=True)
    e.add_argument("--masks", type=Path, required=True)
    e.add_argument("--out", type=Path, default=None, help="summary.json to write")

    pr = sub.add_parser("predict", help="write one mask PNG per input B-scan",
                        description="Segment every PNG/TIFF B-scan of --input; masks (0 background, 1.. classes) "
                                    "are written under --output with the same file names, at the input's size.")
    pr.add_argument("--checkpoint", type=Path, required=True)
    pr.add_argument("--input", type=Path, required=True)
    pr.add_argument("--output", type=Path, required=True)
    pr.add_argument("--overwrite", action="store_true", help="replace existing masks in --output")

    s = sub.add_parser("simulate", help="render the embedded data as a simulated OCT device",
                       description="Write the embedded Duke DME B-scans rendered as a simulated device "
                                   "(images/, masks/, index.csv; same layout as the embedded data).")
    s.add_argument("--device", help="device name from devices.yaml (e.g. cirrus-like, topcon-like)")
    s.add_argument("--out", type=Path, help="dataset folder to create (must not exist or be empty)")
    s.add_argument("--seed", type=int, default=0, help="simulation seed (default: %(default)s)")
    s.add_argument("--preview", type=Path, metavar="PNG",
                   help="instead of a dataset, draw one B-scan as every domain side by side into PNG")
    return p


def _cmd_demo(args) -> int:
    from segclr.experiment.demo import run_demo

    run_demo(args.out, seed=args.seed, steps=args.steps, target=args.target)
    print(f"report written to {args.out}/ (results.json, results.md, overlays_*.png, <method>/)")
    return 0


def _cmd_fit(args) -> int:
    from segclr.config import load_config
    from segclr.training.trainer import fit

    cfg = load_config(args.config, args.overrides)
    res = fit(cfg, args.out, resume=args.resume)
    print(f"trained {res.steps} steps in {res.seconds:.0f} s; model bundle: {res.bundle}")
    return 0


def _cmd_evaluate(args) -> int:
    from segclr.evaluation.evaluate import evaluate_folder, format_summary

    summary = evaluate_folder(args.checkpoint, args.images, args.masks, args.out)
    print(format_summary(summary))
    if args.out:
        print(f"summary written to {args.out}")
    return 0


def _cmd_predict(args) -> int:
    from segclr.inference.predict import predict_folder

    written = predict_folder(args.checkpoint, args.input, args.output, overwrite=args.overwrite)
    print(f"wrote {len(written)} masks to {args.output}")
    return 0


def _cmd_simulate(args) -> int:
    from segclr.data.export import export_domain

    if args.preview:
        from segclr.evaluation.report import domain_preview

        domain_preview(args.preview, seed=args.seed)
        print(f"wrote {args.preview}")
        return 0
    if not args.device or not args.out:
        raise InputError("simulate needs --device and --out (or --preview PNG)")
    n = export_domain(args.device, args.out, seed=args.seed)
    print(f"wrote {n} B-scans to {args.out}")
    return 0


COMMANDS = {"demo": _cmd_demo, "fit": _cmd_fit, "evaluate": _cmd_evaluate, "predict": _cmd_predict,
            "simulate": _cmd_simulate}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (InputError, ConfigError) as err:
        print(f"segclr {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
