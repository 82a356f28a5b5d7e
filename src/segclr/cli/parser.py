"""Argument parsing of the ``segclr`` command: the top-level parser, one sub-parser per command, shared options."""

from __future__ import annotations

import argparse
from pathlib import Path

from segclr import __version__
from segclr.config import MODES

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
                   help="B-scan folder, volume file, folder or dataset, or a dataset file "
                        "(.yaml: scores its test role)")
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
    x.add_argument("--out", type=Path, default=Path("runs/experiment"),
                   help="runs and aggregates (default: %(default)s)")
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
