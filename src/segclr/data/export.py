"""Write a (possibly simulated) domain to disk in the embedded data's layout."""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from pathlib import Path

from tqdm import tqdm

from segclr.data.domains import ANNOTATED_COLUMNS, SOURCE_DOMAIN, DomainBank, role_of
from segclr.io.atomic import atomic_write_text
from segclr.io.images import InputError, write_image, write_mask


def export_domain(device: str, out_dir: str | Path, seed: int = 0, progress: bool = True) -> int:
    """Render every embedded B-scan as ``device`` into ``out_dir/{images,masks}`` + ``index.csv``.

    B-scans are cropped to the annotated columns (as in training and scoring). Returns the count.
    """
    from segclr.data.simulate import normalize_device_name

    name = device if device == SOURCE_DOMAIN else normalize_device_name(device)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out}: output folder is not empty; choose a new --out")
    volumes = DomainBank(seed).domain(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    final, out = out, Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # renamed when complete
    try:
        n = _write(volumes, name, seed, out, progress)
        os.replace(out, final)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return n


def _write(volumes, name: str, seed: int, out: Path, progress: bool) -> int:
    rows = []
    for vol in tqdm(volumes, desc=f"write {name}", unit="volume", disable=not progress):
        for fname, img, msk in zip(vol.names, vol.images, vol.masks):
            write_image(out / "images" / fname, img)
            write_mask(out / "masks" / fname, msk)
            rows.append({"file": fname, "subject": vol.patient, "split": role_of(vol.patient), "domain": name,
                         "height": img.shape[0], "width": img.shape[1], "fluid_pixels": int(msk.sum())})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "index.csv", buf.getvalue())
    c0, c1 = ANNOTATED_COLUMNS
    atomic_write_text(out / "README.md", (
        f"# {name}: Duke DME B-scans rendered by segclr's device simulator (seed {seed})\n\n"
        f"Real Spectralis anatomy and grader-1 fluid masks (Chiu et al., Biomed. Opt. Express 6(4):1172, 2015; "
        f"research use, cite it), columns {c0}-{c1} (the annotated span), rendered as a *simulated* device. "
        "Not real data from that device.\n"))
    return len(rows)
