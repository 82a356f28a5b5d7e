"""``segclr models``, ``bench``, ``export`` and ``simulate``: packaged models, speed, export, simulated data."""

from __future__ import annotations

from segclr.cli.common import _bars
from segclr.io.images import InputError


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
