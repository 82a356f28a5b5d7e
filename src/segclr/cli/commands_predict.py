"""``segclr evaluate`` and ``predict`` (with ``--report``): applying and scoring a model."""

from __future__ import annotations

import sys
from pathlib import Path

from segclr.cli.common import _bars
from segclr.io.images import InputError


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

            report_volumes(report, res.rows, res.classes, args.checkpoint, run=_report_run(args), progress=_bars(),
                           predictor=res.predictor)
            print(f"report: {report}")
        return 0
    from segclr.io.bscans import BSCAN_SUFFIXES

    if args.input.is_file() and args.input.suffix.lower() in BSCAN_SUFFIXES:  # one B-scan file
        from segclr.inference.volumes import predict_bscan_file

        res = predict_bscan_file(args.checkpoint, args.input, args.output, overwrite=args.overwrite,
                                 csv_path=args.csv, spacing_um=args.spacing, postprocess=args.postprocess)
        print(f"wrote mask {res.outputs[0]}" + (f"; fluid volumes in {res.csv}" if res.csv else ""))
        if report is not None:
            _bscan_report(report, args, [args.input], res.outputs, res.rows, res.predictor)
        return 0
    if args.csv is not None:
        from segclr.inference.volumes import predict_bscan_folder

        res = predict_bscan_folder(args.checkpoint, args.input, args.output, args.csv, overwrite=args.overwrite,
                                   progress=_bars(), spacing_um=args.spacing, postprocess=args.postprocess)
        print(f"wrote {len(res.outputs)} masks to {args.output}; fluid volumes in {res.csv}")
        written, rows, predictor = res.outputs, res.rows, res.predictor
    else:
        from segclr.inference.predict import Predictor, predict_folder

        # with --report, the model is loaded here once and serves both the masks and the report
        predictor = Predictor(args.checkpoint, postprocess=args.postprocess) if report is not None else None
        written = predict_folder(args.checkpoint, args.input, args.output, overwrite=args.overwrite,
                                 progress=_bars(), spacing_um=args.spacing, postprocess=args.postprocess,
                                 predictor=predictor)
        print(f"wrote {len(written)} masks to {args.output}")
        rows = []
    if report is not None:
        from segclr.io.bscans import list_bscans

        _bscan_report(report, args, list_bscans(args.input), written, rows, predictor)
    return 0


def _bscan_report(report: Path, args, images: list[Path], masks: list[Path], rows: list[dict], predictor) -> None:
    """``--report`` for a B-scan folder or file: one volume; spacing from the input's volume.json;
    ``predictor``: the model loaded for the masks (reused for the report)."""
    import numpy as np

    from segclr.inference.html_report import report_bscans
    from segclr.io.bscans import read_sidecar
    from segclr.io.volumes import Volume

    folder = args.input if args.input.is_dir() else args.input.parent
    side = read_sidecar(folder)
    spacing = Volume(np.zeros((1, 1, 1)), side["spacing_mm"]).spacing_mm if side.get("spacing_mm") else None
    case = args.input.name if args.input.is_dir() else args.input.stem
    report_bscans(report, case, images, masks, args.checkpoint, spacing, rows[0] if rows else None,
                  run=_report_run(args), predictor=predictor)
    print(f"report: {report}")
