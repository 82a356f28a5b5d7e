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

The package: :mod:`~segclr.cli.parser` builds the argument parser; the handlers live in
:mod:`~segclr.cli.commands_train` (demo, fit, experiment), :mod:`~segclr.cli.commands_predict`
(evaluate, predict) and :mod:`~segclr.cli.commands_tools` (models, bench, export, simulate).
"""

from __future__ import annotations

import argparse
import sys

from segclr.cli.commands_predict import _cmd_evaluate, _cmd_predict
from segclr.cli.commands_tools import _cmd_bench, _cmd_export, _cmd_models, _cmd_simulate
from segclr.cli.commands_train import _cmd_demo, _cmd_experiment, _cmd_fit
from segclr.cli.parser import EXAMPLES, _parser
from segclr.config import ConfigError
from segclr.io.images import InputError
from segclr.training.errors import NonFiniteError

# commands that train or segment: freed memory stays in the process (glibc; docs/performance.md)
HEAVY = ("demo", "fit", "experiment", "evaluate", "predict")
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
    if args.command in HEAVY:
        from segclr.inference import allocator

        allocator.keep_freed_memory()
    try:
        return COMMANDS[args.command](args)
    except (InputError, ConfigError) as err:
        print(f"segclr {args.command}: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteError as err:
        print(f"segclr {args.command}: training stopped: {err}", file=sys.stderr)
        return 3


__all__ = ["COMMANDS", "EXAMPLES", "main"]
