"""Apply a model bundle to B-scans of any size, exactly as it was trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from segclr.data.preprocess import Preprocessing, pad_to_multiple, resize_image
from segclr.inference.shift import bottleneck_embeddings, shift_scores, split_bundle_tensors
from segclr.io.bscans import list_bscans
from segclr.io.bundle import load_bundle
from segclr.io.images import InputError, read_image, write_mask
from segclr.models import UNet



class Predictor:
    """Loads ``model.safetensors`` and segments B-scans: ``predictor(image) -> mask``.

    Each B-scan is resized to the training height, padded to the UNet's size multiple,
    segmented, un-padded, and its class probabilities are resized back to the input size
    before the argmax, so the mask has exactly the input's shape.
    """

    def __init__(self, checkpoint: str | Path, device: str | torch.device = "cpu") -> None:
        state, meta = load_bundle(checkpoint)
        state, self.shift_stats = split_bundle_tensors(state)
        m = meta["model"]
        self.meta = meta
        self.classes: list[str] = list(meta["classes"])
        self.prep = Preprocessing(**meta["preprocess"])
        self.device = torch.device(device)
        self.net = UNet(1, m["num_classes"], m["base_channels"], m["depth"], m["norm"], m.get("dropout", 0.0))
        try:
            self.net.load_state_dict(state)
        except RuntimeError as err:
            raise InputError(f"{checkpoint}: weights do not match the architecture in its metadata ({err})") from None
        self.net.to(self.device).eval()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shift_threshold(self) -> float | None:
        return None if self.shift_stats is None else float(self.shift_stats["threshold"][0])

    def shift_scores(self, images: np.ndarray) -> np.ndarray | None:
        """(N, H, W) B-scans of one size -> per-B-scan domain-shift score (see :mod:`segclr.inference.shift`).

        None for bundles without stored statistics.
        """
        if self.shift_stats is None:
            return None
        x, _ = self._network_input(images)
        return shift_scores(bottleneck_embeddings(self.net, x), self.shift_stats).numpy()

    def _network_input(self, images: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """(N, H, W) float [0, 1] -> resized, padded (N, 1, h', w') tensor and the unpadded working size."""
        images = np.asarray(images)
        if images.ndim != 3:
            raise ValueError(f"expected a batch of B-scans (N, H, W), got shape {images.shape}")
        _, h, w = images.shape
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None].to(self.device)
        return pad_to_multiple(resize_image(x, self.prep.working_size(h, w)), self.prep.pad_multiple)

    def probabilities(self, image: np.ndarray) -> torch.Tensor:
        """(H, W) float [0, 1] -> (C, H, W) softmax probabilities at the input size."""
        return self.probabilities_batch(np.asarray(image)[None])[0]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.predict_batch(np.asarray(image)[None])[0]

    @torch.inference_mode()
    def probabilities_batch(self, images: np.ndarray) -> torch.Tensor:
        """(N, H, W) float [0, 1] B-scans of one size -> (N, C, H, W) softmax probabilities.

        Same preprocessing as :meth:`probabilities`, applied to the whole batch at once.
        """
        x, (wh, ww) = self._network_input(images)
        h, w = np.asarray(images).shape[-2:]
        logits = self.net(x)[..., :wh, :ww]
        probs = torch.softmax(logits.float(), dim=1)
        if (wh, ww) != (h, w):
            probs = F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)
        return probs.cpu()

    def predict_batch(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) B-scans of one size -> (N, H, W) uint8 masks, equal to calling the predictor on each."""
        # torch.max(...).indices, not argmax: same labels, but argmax over dim 1 of an (N, C, H, W) map
        # is ~150x slower on the CPU build we measured (benchmarks/bench_train.py, docs/performance.md)
        return torch.max(self.probabilities_batch(images), dim=1).indices.numpy().astype(np.uint8)


def list_images(folder: str | Path) -> list[Path]:
    """The PNG/TIFF B-scans of a folder, sorted (see :func:`segclr.io.bscans.list_bscans`)."""
    return list_bscans(folder)


def predict_folder(checkpoint: str | Path, input_dir: str | Path, output_dir: str | Path,
                   overwrite: bool = False, progress: bool = True) -> list[Path]:
    """Write one mask PNG per input B-scan (same file name); returns the written paths."""
    input_dir, output_dir = Path(input_dir).resolve(), Path(output_dir).resolve()
    files = list_images(input_dir)
    if output_dir == input_dir or input_dir in output_dir.parents:
        raise InputError(f"{input_dir}: output folder {output_dir} is inside the input folder; choose another --output")
    targets = [output_dir / (f.stem + ".png") for f in files]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise InputError(f"{existing[0]}: output exists ({len(existing)} files would be overwritten); pass --overwrite")
    predictor = Predictor(checkpoint)
    images = [read_image(f) for f in files]  # validate every input before writing anything
    for img, target in tqdm(list(zip(images, targets)), desc="predict", unit="B-scan", disable=not progress):
        write_mask(target, predictor(img))
    return targets
