"""Export a model bundle to TorchScript or ONNX (checked against PyTorch), and write model cards.

The exported network is the UNet alone: input ``image`` (N, 1, h, w) float32 at the working
resolution, h and w multiples of the bundle's ``pad_multiple``; output ``logits`` (N, C, h, w).
Batch size, height and width are dynamic. The preprocessing around it (intensities to [0, 1],
resize to ``input_height`` rows keeping the aspect ratio, bilinear with antialiasing; zero-pad
bottom/right to the multiple; softmax; crop; bilinear resize back; argmax) is spelled out in the
model card and stored in the exported file's metadata. After writing, the exported model is
run on a B-scan-like batch of a different size than the one it was traced with and compared to
the PyTorch output; a mismatch removes the file and raises.

ONNX export needs the optional extra ``pip install segclr[onnx]`` (onnx, onnxruntime).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from segclr.io.atomic import atomic_path, atomic_write_text
from segclr.io.bundle import load_bundle, resolve_bundle_path
from segclr.io.images import InputError

FORMATS = ("torchscript", "onnx")
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}
TOLERANCE = 1e-4  # max |exported - PyTorch| on logits
CARD_MD, CARD_JSON = "model_card.md", "model_card.json"


class ExportableUNet(nn.Module):
    """The bundle's UNet without the Python-side input check, so tracing keeps shapes dynamic."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: Tensor) -> Tensor:
        return self.net.decode(self.net.encode_unchecked(image))


@dataclass
class ExportResult:
    path: Path
    format: str
    max_abs_diff: float
    card: Path | None


def _predictor(checkpoint: str | Path):
    from segclr.inference.predict import Predictor

    return Predictor(checkpoint)


def _example(prep, height: int, width: int, batch: int, seed: int) -> Tensor:
    """A B-scan-like batch at the working resolution (smooth layers plus noise), padded to the multiple."""
    from segclr.data.preprocess import pad_to_multiple

    g = torch.Generator().manual_seed(seed)
    h = prep.input_height
    w = max(prep.pad_multiple, int(round(width * h / height)))
    rows = torch.linspace(0, 1, h)[:, None]
    layers = 0.5 + 0.4 * torch.sin(rows * 12.0 + torch.linspace(0, 3, w)[None, :])
    x = (layers[None, None] + 0.1 * torch.randn(batch, 1, h, w, generator=g)).clamp(0, 1)
    return pad_to_multiple(x, prep.pad_multiple)[0]


def export_model(checkpoint: str | Path, fmt: str, out: str | Path | None = None, overwrite: bool = False,
                 check: bool = True) -> ExportResult:
    """Export ``checkpoint`` (model.safetensors) to ``fmt``; default output next to it (model.pt / model.onnx)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    checkpoint = resolve_bundle_path(checkpoint)
    out = Path(out) if out is not None else checkpoint.with_suffix(SUFFIX[fmt])
    if out.resolve() == checkpoint.resolve():
        raise InputError(f"{out}: the export would overwrite the checkpoint; choose another --out")
    if out.exists() and not overwrite:
        raise InputError(f"{out}: output exists; pass --overwrite")
    if fmt == "onnx":
        _require_onnx(out)
    predictor = _predictor(checkpoint)
    model = ExportableUNet(predictor.net).eval()
    meta = _export_metadata(predictor.meta)
    trace_x = _example(predictor.prep, 496, 512, batch=1, seed=0)
    check_x = _example(predictor.prep, 496, 768, batch=3, seed=1)  # other batch size and width
    with torch.inference_mode():
        expected = predictor.net(check_x)
    if fmt == "torchscript":
        _export_torchscript(model, trace_x, out, meta)
        got = _run_torchscript(out, check_x) if check else expected
    else:
        _export_onnx(model, trace_x, out, meta)
        got = _run_onnx(out, check_x) if check else expected
    diff = float((got - expected).abs().max())
    if not math.isfinite(diff) or diff > TOLERANCE:
        out.unlink(missing_ok=True)
        raise RuntimeError(f"{out}: exported model differs from PyTorch by {diff:.3g} (> {TOLERANCE}); removed")
    card = None
    if out.parent.resolve() != checkpoint.parent.resolve():
        card = write_model_card(checkpoint, out.parent / CARD_MD)
    return ExportResult(out, fmt, diff, card)


def _export_metadata(meta: dict) -> dict[str, str]:
    return {
        "format": "segclr-export/1",
        "classes": json.dumps(meta["classes"]),
        "preprocess": json.dumps(meta["preprocess"]),
        "model": json.dumps(meta["model"]),
        "training_domains": json.dumps(_domains(meta)),
        "input": "image: float32 (N, 1, h, w), [0, 1], h = preprocess.input_height, h and w multiples of "
                 "preprocess.pad_multiple (zero-padded bottom/right)",
        "output": "logits: float32 (N, C, h, w); softmax over C, crop the padding, resize to the B-scan, argmax",
    }


def _export_torchscript(model: nn.Module, x: Tensor, out: Path, meta: dict[str, str]) -> None:
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
    with atomic_path(out) as tmp:
        torch.jit.save(traced, str(tmp), _extra_files={"segclr.json": json.dumps(meta)})


def _run_torchscript(path: Path, x: Tensor) -> Tensor:
    loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return loaded(x)


def _require_onnx(out: Path) -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise InputError(f"{out}: ONNX export needs onnx and onnxruntime; pip install segclr[onnx]") from None


def _export_onnx(model: nn.Module, x: Tensor, out: Path, meta: dict[str, str]) -> None:
    import warnings

    import onnx

    dyn = {0: "batch", 2: "height", 3: "width"}
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(tmp), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": dyn, "logits": dyn}, opset_version=17, dynamo=False)
        proto = onnx.load(str(tmp))
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))


def _run_onnx(path: Path, x: Tensor) -> Tensor:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"image": x.numpy()})
    return torch.from_numpy(np.asarray(logits))


# --- model cards -------------------------------------------------------------------------------

def _domains(meta: dict) -> dict:
    t = meta.get("training", {})
    return {"labeled": t.get("labeled_domain"), "unlabeled": t.get("unlabeled_domains", [])}


def model_card(meta: dict, metrics: dict | None = None) -> dict:
    """The model card as a dict, from a bundle's metadata (and metrics if any)."""
    t = meta.get("training", {})
    p = meta["preprocess"]
    cfg = t.get("config", {})
    return {
        "model": "segclr 2D UNet (slice-wise OCT fluid segmentation)",
        "classes": {str(i): name for i, name in enumerate(meta["classes"])},
        "architecture": meta["model"],
        "input": {
            "unit": "one B-scan (2D); volumes are segmented B-scan by B-scan along array axis 0",
            "intensity": "float in [0, 1]: 8-bit / 255, 16-bit / 65535, other types min-max per volume",
            "any_size": True,
        },
        "preprocessing": {
            "resize": _resize_text(p),
            "pad": f"zeros at the bottom/right to a multiple of {p['pad_multiple']}",
            "output": "softmax, crop the padding, bilinear resize to the B-scan size, argmax",
            **p,
        },
        "spacing": _training_spacing(meta),
        "training": {
            "mode": t.get("mode"),
            "domains": _domains(meta),
            "steps": t.get("steps"),
            "seed": t.get("seed"),
            "segclr_version": t.get("segclr_version"),
            "input_height": cfg.get("data", {}).get("input_height", p.get("input_height")),
        },
        "metrics": metrics or None,
    }


def _resize_text(p: dict) -> str:
    by_height = f"to {p['input_height']} rows, width scaled to keep the aspect ratio, bilinear with antialiasing"
    t = p.get("target_spacing_um")
    if not t:
        return by_height
    return (f"B-scans of known pixel spacing resampled to {t[0]:g} x {t[1]:g} um per pixel (row x column: the "
            f"model's target spacing), bilinear with antialiasing; B-scans of unknown spacing {by_height}")


def _training_spacing(meta: dict) -> str:
    """How the model uses pixel spacing, and the grid it was trained on (known for the embedded benchmark)."""
    t = meta["preprocess"].get("target_spacing_um")
    if t:
        generic = (f"spacing-aware: a B-scan's pixel spacing (volume header, volume.json or --spacing) is used to "
                   f"resample it to {t[0]:g} x {t[1]:g} um per pixel and the prediction back to its grid; without "
                   f"a known spacing it is resized to the working height, with one warning line; a volume's voxel "
                   f"spacing also gives fluid volumes (nl) and HD95 (mm)")
    else:
        generic = ("the model sees pixels: every B-scan is resized to the working height, so no spacing is "
                   "assumed; a volume's voxel spacing is used only for fluid volumes (nl) and HD95 (mm)")
    domains = _domains(meta)
    try:
        from segclr.data.simulate import load_devices

        source, devices = load_devices()
    except Exception:  # noqa: BLE001 - the card must not fail on a damaged resource file
        return generic
    known = {source.name, *devices}
    used = [d for d in [domains["labeled"], *(domains["unlabeled"] or [])] if d]
    if not used or not set(used) <= known:
        return generic
    h = meta["preprocess"]["input_height"]
    native = (meta.get("training", {}).get("config", {}).get("data", {}).get("geometry") == "native"
              and set(used) != {source.name})
    grids = ("each simulated device on its own grid" if native else f"all domains on the {source.name} grid")
    scale = ("resampled to the target spacing" if t else
             f"resized to {h} rows (about {source.axial_spacing_um * 496 / h:.1f} um per row at the working height)")
    return (f"{generic}. Training B-scans (the embedded benchmark, {grids}): {source.name} "
            f"{source.axial_spacing_um} um per row and {source.lateral_spacing_um} um per A-scan natively, 496 rows, "
            f"{scale}")


def _find_metrics(folder: Path) -> dict | None:
    for name in ("summary.json", "results.json"):
        f = folder / name
        if f.is_file():
            try:
                data = json.loads(f.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(data, dict) and "foreground_mean" in data:
                return {"source": name, "foreground_mean": data["foreground_mean"],
                        "per_class": {k: {m: v.get(m) for m in ("name", "Dice", "pooled_Dice", "HD95_mm") if m in v}
                                      for k, v in data.get("mean", {}).items()}}
    return None


def _card_markdown(card: dict) -> str:
    t, p = card["training"], card["preprocessing"]
    lines = [
        "# Model card", "",
        f"{card['model']}.", "",
        "## Classes", "",
        *[f"- `{i}`: {name}" for i, name in card["classes"].items()], "",
        "## Input and preprocessing", "",
        f"- Unit: {card['input']['unit']}.",
        f"- Intensity: {card['input']['intensity']}.",
        f"- Resize: {p['resize']}.",
        f"- Pad: {p['pad']}.",
        f"- Output: {p['output']}.",
        f"- Spacing: {card['spacing']}.", "",
        "## Training", "",
        f"- Mode: {t['mode']}",
        f"- Labeled domain: {t['domains']['labeled']}",
        f"- Unlabeled domains: {', '.join(t['domains']['unlabeled'] or []) or 'none'}",
        f"- Steps: {t['steps']}, seed: {t['seed']}, segclr {t['segclr_version']}", "",
        "## Metrics", "",
    ]
    m = card["metrics"]
    if not m:
        lines.append("None recorded with this model; run `segclr evaluate` on held-out data.")
    else:
        lines.append(f"From `{m['source']}`:")
        lines.append("")
        for d, v in m.get("per_domain", {}).items():
            lines.append(f"- {d}: Dice per B-scan {_num(v.get('Dice'))} (n={v.get('n_dice')}), "
                         f"pooled Dice {_num(v.get('pooled_Dice'))} (n={v.get('n_bscans')})")
        for k, v in m.get("per_class", {}).items():
            lines.append(f"- class {k} ({v.get('name')}): " + ", ".join(
                f"{name} {val:.3f}" for name, val in v.items() if name != "name" and isinstance(val, (int, float))))
        if m.get("foreground_mean"):
            lines.append("- foreground mean: " + ", ".join(
                f"{name} {val:.3f}" for name, val in m["foreground_mean"].items() if isinstance(val, (int, float))))
    lines += ["", "## Architecture", "", "```json", json.dumps(card["architecture"], indent=2), "```", ""]
    return "\n".join(lines)


def _num(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"


def write_model_card(bundle_path: str | Path, out: str | Path | None = None, metrics: dict | None = None) -> Path:
    """Write ``model_card.md`` and ``model_card.json`` (next to the bundle by default); returns the .md path.

    Metrics come from ``metrics`` or, if absent, from a ``summary.json``/``results.json`` beside the bundle.
    """
    bundle_path = Path(bundle_path)
    _, meta = load_bundle(bundle_path)
    out = Path(out) if out is not None else bundle_path.parent / CARD_MD
    card = model_card(meta, metrics if metrics is not None else _find_metrics(bundle_path.parent))
    card["bundle"] = bundle_path.name
    atomic_write_text(out.with_suffix(".json"), json.dumps(card, indent=2, default=str))
    atomic_write_text(out, _card_markdown(card))
    return out
