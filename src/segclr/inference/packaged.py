"""Models shipped inside the package (``segclr/resources/models/<name>/``) and model-card summaries.

Each packaged model is one folder::

    resources/models/<name>/model.safetensors   the bundle (as written by ``segclr fit``)
    resources/models/<name>/model_card.md       the card (``write_model_card``), human-readable
    resources/models/<name>/model_card.json     the same card as JSON
    resources/models/<name>/packaged.json       name, status, default flag, training data in words,
                                                measured Dice per domain, seed, steps, the command
                                                that regenerates it, the research-use notice

``segclr models`` lists them; ``segclr predict`` without ``--checkpoint`` uses the one marked
``"default": true``. A folder without ``model.safetensors`` is an empty slot ("not yet trained").

:func:`card_summary` gives the short summary of any bundle (packaged or not) that ``segclr models``
and the HTML report show: training data, measured Dice per domain, and the research-use notice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from segclr.io.bundle import BUNDLE_NAME, resolve_bundle_path
from segclr.io.images import InputError

MODELS_DIR = Path(__file__).resolve().parents[1] / "resources" / "models"
INFO_NAME = "packaged.json"
RESEARCH_NOTICE = ("For research use only. Not a medical device: not for diagnosis, treatment or any other "
                   "clinical decision. Every segmentation must be checked by a qualified reader.")


@dataclass
class PackagedModel:
    name: str
    folder: Path
    info: dict = field(default_factory=dict)

    @property
    def bundle(self) -> Path:
        return self.folder / BUNDLE_NAME

    @property
    def trained(self) -> bool:
        return self.bundle.is_file()

    @property
    def default(self) -> bool:
        return bool(self.info.get("default"))

    @property
    def status(self) -> str:
        return self.info.get("status") or ("trained" if self.trained else "not yet trained")


def list_models(models_dir: str | Path | None = None) -> list[PackagedModel]:
    """Every packaged model folder (those holding a ``packaged.json``), sorted by name."""
    root = Path(models_dir) if models_dir is not None else MODELS_DIR
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        info_file = folder / INFO_NAME
        if not info_file.is_file():
            continue
        try:
            info = json.loads(info_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            info = {"status": f"unreadable {INFO_NAME}"}
        out.append(PackagedModel(info.get("name", folder.name), folder, info if isinstance(info, dict) else {}))
    return out


def default_model(models_dir: str | Path | None = None) -> PackagedModel:
    """The packaged model ``segclr predict`` uses without ``--checkpoint``; raises InputError if none is trained."""
    models = list_models(models_dir)
    chosen = next((m for m in models if m.default), models[0] if len(models) == 1 else None)
    if chosen is None or not chosen.trained:
        slot = f" (slot {chosen.name!r}: {chosen.status})" if chosen is not None else ""
        raise InputError(f"no --checkpoint given and no packaged model is installed yet{slot}; "
                         f"pass --checkpoint model.safetensors (see `segclr models`)")
    return chosen


def _packaged_info(bundle: Path) -> dict:
    info_file = bundle.parent / INFO_NAME
    if info_file.is_file():
        try:
            data = json.loads(info_file.read_text())
            return data if isinstance(data, dict) else {}
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            return {}
    return {}


def _card(bundle: Path) -> dict:
    card_file = bundle.parent / "model_card.json"
    if card_file.is_file() and bundle.name == BUNDLE_NAME:
        try:
            data = json.loads(card_file.read_text())
            return data if isinstance(data, dict) else {}
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            return {}
    return {}


def card_summary(checkpoint: str | Path, meta: dict | None = None) -> dict:
    """Short summary of a bundle for ``segclr models`` and the HTML report.

    Keys: ``name``, ``path``, ``status``, ``training_data`` (words), ``mode``, ``steps``, ``seed``,
    ``dice`` (domain -> {"dice": per-B-scan mean, "pooled": pooled Dice, "n": B-scans}; empty when
    never measured), ``dice_source`` (where the numbers come from), ``regenerate`` (command, if
    known), ``notice`` (research use only). ``meta`` is the bundle's metadata when already loaded.
    """
    bundle = resolve_bundle_path(checkpoint).resolve()
    if meta is None:
        from segclr.io.bundle import load_bundle

        _, meta = load_bundle(bundle)
    info, card = _packaged_info(bundle), _card(bundle)
    t = meta.get("training", {}) or {}
    labeled = t.get("labeled_domains") or ([t["labeled_domain"]] if t.get("labeled_domain") else [])
    unlabeled = t.get("unlabeled_domains") or []
    default_words = (f"{t.get('mode') or 'unknown mode'}; labels from {', '.join(labeled) or 'none recorded'}; "
                     + (f"unlabeled images from {', '.join(unlabeled)}" if unlabeled else "no unlabeled images"))
    dice = info.get("dice") or {}
    source = info.get("dice_source") or ""
    metrics = card.get("metrics") or {}
    if not dice and metrics.get("per_domain"):
        dice = {d: {"dice": v.get("Dice"), "pooled": v.get("pooled_Dice"), "n": v.get("n_bscans")}
                for d, v in metrics["per_domain"].items()}
        source = f"model_card.json ({metrics.get('source', 'metrics')})"
    return {
        "name": info.get("name") or bundle.parent.name,
        "path": str(bundle),
        "status": info.get("status") or "",
        "training_data": info.get("training_data") or default_words,
        "mode": t.get("mode"),
        "steps": t.get("steps"),
        "seed": t.get("seed"),
        "classes": list(meta.get("classes", [])),
        "dice": dice,
        "dice_source": source or "not measured with this model",
        "regenerate": info.get("regenerate") or "",
        "notice": info.get("notice") or RESEARCH_NOTICE,
    }


def format_models(models: list[PackagedModel]) -> str:
    """The text ``segclr models`` prints."""
    if not models:
        return f"no packaged models in {MODELS_DIR}"
    lines = []
    for m in models:
        flag = " (default)" if m.default else ""
        lines.append(f"{m.name}{flag}: {m.status}")
        if not m.trained:
            lines.append(f"  slot {m.folder}: no model.safetensors yet")
            if m.info.get("note"):
                lines.append(f"  {m.info['note']}")
            continue
        try:
            s = card_summary(m.bundle)
        except InputError as err:
            lines.append(f"  unreadable: {err}")
            continue
        lines.append(f"  trained on: {s['training_data']}")
        lines.append(f"  steps {s['steps']}, seed {s['seed']}, classes {', '.join(s['classes'][1:])}")
        if s["dice"]:
            lines.append(f"  measured Dice ({s['dice_source']}):")
            for d, v in s["dice"].items():
                lines.append(f"    {d:<14} per B-scan {_num(v.get('dice'))}   pooled {_num(v.get('pooled'))}"
                             + (f"   ({v['n']} B-scans)" if v.get("n") is not None else ""))
        else:
            lines.append("  measured Dice: none recorded")
        lines.append(f"  bundle: {m.bundle}")
        lines.append(f"  {s['notice']}")
    return "\n".join(lines)


def _num(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"
