"""``segclr demo``, ``fit`` and ``experiment``: training runs and training studies."""

from __future__ import annotations

from pathlib import Path


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


def _cmd_experiment(args) -> int:
    from segclr.experiment.runner import run_experiment

    cells = run_experiment(args.spec, args.out, seeds=args.seeds, report_dir=args.report_dir, dry_run=args.dry_run,
                           report_only=args.report_only, cells_dir=args.cells, git_commit=args.git_commit,
                           methods=args.methods)
    if args.dry_run:
        from segclr.experiment.estimate import format_estimate
        from segclr.experiment.runner import default_cells_dir, is_done, load_spec

        cells_dir = args.cells or default_cells_dir(load_spec(args.spec), args.out, args.report_dir)
        print(format_estimate(cells, [is_done(cells_dir, c) for c in cells], cells_dir=Path(cells_dir)))
    else:
        print(f"results in {args.out}/results.csv; report in {args.report_dir or args.out}/RESULTS.md")
    return 0
