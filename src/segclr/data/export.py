"""Write a (possibly simulated) domain to disk in the embedded data's layout."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

from tqdm import tqdm

from segclr.data.domains import ANNOTATED_COLUMNS, SOURCE_DOMAIN, SPLITS, load_spectralis, role_of, simulate_domain
from segclr.io.atomic import atomic_write_text
from segclr.io.images import InputError, write_image, write_mask

# Duke DME's 11 annotated B-scans per patient are not neighbours in the scan: a nominal distance
NOMINAL_SLICE_MM = 0.12


def export_domain(device: str, out_dir: str | Path, seed: int = 0, progress: bool = True,
                  patients: tuple[int, ...] | None = None, geometry: str = "native") -> int:
    """Render the embedded B-scans as ``device`` into ``out_dir/{images,masks}`` + ``index.csv``.

    ``patients`` limits it to those Duke patients (e.g. the test split ``(9, 10)``); each patient's
    rendering is the same as in the full set. B-scans are cropped to the annotated columns (as in
    training and scoring). ``geometry="native"`` writes each device on its own pixel grid; the
    spacing goes into ``index.csv`` and into ``images/volume.json`` and ``masks/volume.json``
    (``{"spacing_mm": [z, y, x]}``, z nominal), so ``segclr predict`` picks it up. Returns the count.
    """
    from segclr.data.simulate import normalize_device_name

    name = device if device == SOURCE_DOMAIN else normalize_device_name(device)
    known = sorted(p for ps in SPLITS.values() for p in ps)
    bad = [p for p in patients or () if p not in known]
    if bad or patients == ():
        raise InputError(f"--patients: {bad or 'none given'}; the embedded data has patients "
                         f"{known[0]}-{known[-1]} (source train 1-5, target train 6-8, test 9-10)")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out}: output folder is not empty; choose a new --out")
    volumes = load_spectralis(patients=tuple(patients) if patients else None)
    if name != SOURCE_DOMAIN:
        volumes = simulate_domain(volumes, name, seed, geometry)
    out.parent.mkdir(parents=True, exist_ok=True)
    final, out = out, Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # renamed when complete
    os.chmod(out, 0o777 & ~_umask())  # mkdtemp makes a 0700 folder; the dataset gets the usual mode
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
            sp = vol.spacing_um or ("", "")
            rows.append({"file": fname, "subject": vol.patient, "split": role_of(vol.patient), "domain": name,
                         "height": img.shape[0], "width": img.shape[1], "fluid_pixels": int(msk.sum()),
                         "spacing_row_um": sp[0], "spacing_col_um": sp[1]})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "index.csv", buf.getvalue())
    spacing = volumes[0].spacing_um if volumes else None
    if spacing is not None:  # one grid per domain; z is the nominal Duke B-scan distance (not contiguous)
        side = json.dumps({"spacing_mm": [NOMINAL_SLICE_MM, spacing[0] / 1000.0, spacing[1] / 1000.0]})
        for sub in ("images", "masks"):
            atomic_write_text(out / sub / "volume.json", side + "\n")
    c0, c1 = ANNOTATED_COLUMNS
    atomic_write_text(out / "README.md", (
        f"# {name}: Duke DME B-scans rendered by segclr's device simulator (seed {seed})\n\n"
        f"Real Spectralis anatomy and grader-1 fluid masks (Chiu et al., Biomed. Opt. Express 6(4):1172, 2015; "
        f"research use, cite it), columns {c0}-{c1} (the annotated span), rendered as a *simulated* device. "
        "Not real data from that device.\n"))
    return len(rows)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
