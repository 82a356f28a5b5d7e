"""Apply a model bundle to B-scans of any size, exactly as it was trained."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from segclr.data.preprocess import Preprocessing, check_spacing, pad_to_multiple, resize_image
from segclr.inference.postprocess import apply_postprocess, describe_postprocess, is_active, normalize_params
from segclr.inference.shift import bottleneck_embeddings, pooled_bottleneck, shift_scores, split_bundle_tensors
from segclr.io.bscans import list_bscans
from segclr.io.bundle import load_bundle
from segclr.io.images import InputError, read_image, write_mask
from segclr.models import UNet, fold_batch_norm


def inference_memory_format(device: torch.device) -> torch.memory_format:
    """The layout of the predictor's (batch-norm-folded) weights: channels_last on the CPU, else the default."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def stored_network(checkpoint: str | Path, state: dict, meta: dict) -> UNet:
    """The bundle's UNet as stored (``state`` without the shift statistics), in eval mode on the CPU."""
    m = meta["model"]
    net = UNet(1, m["num_classes"], m["base_channels"], m["depth"], m["norm"], m.get("dropout", 0.0),
               m.get("stem", "conv"))
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(f"{checkpoint}: weights do not match the architecture in its metadata ({err})") from None
    return net.eval()


def prepare_for_inference(net: UNet, device: torch.device) -> UNet:
    """``net`` on ``device`` in eval mode, batch norm folded into the convolutions (same function, one pass
    less), in :func:`inference_memory_format`: on the CPU channels_last, where oneDNN runs the thin
    full-resolution convolutions several times faster (docs/performance.md; the same masks). In place."""
    net.to(device).eval()
    fold_batch_norm(net)
    return net.to(memory_format=inference_memory_format(device))


class Predictor:
    """Loads ``model.safetensors`` and segments B-scans: ``predictor(image) -> mask``.

    Each B-scan is resampled to the model's target pixel spacing (when the model has one and the
    B-scan's spacing is given) or to the training height, padded to the UNet's size multiple,
    segmented, un-padded, and its class probabilities are resized back to the input size before
    the argmax, so the mask has exactly the input's shape.

    The mask is then post-processed as the bundle's ``postprocess`` entry says (small fluid
    components, fluid outside the retina; see :mod:`segclr.inference.postprocess`); bundles
    without it get none. ``postprocess=False`` (or the attribute set to False) returns the raw
    argmax.

    ``net`` is an inference copy of the bundle's UNet: batch norm folded into the convolutions and, on
    the CPU, channels_last weights (the same function, faster; :func:`prepare_for_inference`). To train
    further, take the network as stored (:func:`stored_network`) instead.

    ``checkpoint`` may be a list of bundles: an ensemble (as nnU-Net ensembles its folds). Every member
    segments the B-scan and their softmax probabilities are averaged before the argmax and the
    post-processing. Members must share classes, preprocessing and post-processing (else
    :class:`InputError` naming the bundle); ``net``, ``meta`` and the shift statistics are the first
    member's; ``others`` holds the rest and ``nets`` all of them.
    """

    def __init__(self, checkpoint: str | Path | Sequence[str | Path], device: str | torch.device = "cpu",
                 postprocess: bool = True) -> None:
        paths = [checkpoint] if isinstance(checkpoint, (str, Path)) else list(checkpoint)
        if not paths:
            raise InputError("no model bundle given (an ensemble needs at least one)")
        state, meta = load_bundle(paths[0])
        state, self.shift_stats = split_bundle_tensors(state)
        self.meta = meta
        self.checkpoints: list[str] = [str(p) for p in paths]
        self.classes: list[str] = list(meta["classes"])
        self.prep = Preprocessing(**meta["preprocess"])
        self.device = torch.device(device)
        self.net = prepare_for_inference(stored_network(paths[0], state, meta), self.device)
        self.postprocess_params = normalize_params(meta.get("postprocess"))
        self.postprocess = bool(postprocess)
        self.others: list[UNet] = [self._member(p, paths[0]) for p in paths[1:]]

    @property
    def nets(self) -> list[UNet]:
        """Every member network, ``net`` first (one for a single bundle)."""
        return [self.net, *self.others]

    def _member(self, checkpoint: str | Path, first: str | Path) -> UNet:
        """Another ensemble member: its classes, preprocessing and post-processing must be the first's."""
        state, meta = load_bundle(checkpoint)
        for key, mine, theirs in (("classes", list(meta["classes"]), self.classes),
                                  ("preprocess", Preprocessing(**meta["preprocess"]), self.prep),
                                  ("postprocess", normalize_params(meta.get("postprocess")), self.postprocess_params)):
            if mine != theirs:
                raise InputError(f"{checkpoint}: cannot ensemble it with {first}: its {key} differ "
                                 f"({mine!r} against {theirs!r}); members must be trained with the same "
                                 f"classes, preprocessing and post-processing")
        state, _ = split_bundle_tensors(state)
        return prepare_for_inference(stored_network(checkpoint, state, meta), self.device)

    @property
    def applied_postprocess(self) -> dict | None:
        """The post-processing masks get (``min_component_px``, ``retina_only``), or None when none."""
        if self.postprocess and is_active(self.postprocess_params):
            return dict(self.postprocess_params)
        return None

    @property
    def postprocess_description(self) -> str:
        """:attr:`applied_postprocess` in words (see :func:`~segclr.inference.postprocess.describe_postprocess`)."""
        return describe_postprocess(self.postprocess_params, self.postprocess)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shift_threshold(self) -> float | None:
        return None if self.shift_stats is None else float(self.shift_stats["threshold"][0])

    def shift_scores(self, images: np.ndarray, spacing_um: tuple[float, float] | None = None) -> np.ndarray | None:
        """(N, H, W) B-scans of one size -> per-B-scan domain-shift score (see :mod:`segclr.inference.shift`).

        None for bundles without stored statistics. To segment as well, :meth:`predict_with_scores`
        does both with one encoder pass.
        """
        if self.shift_stats is None:
            return None
        x, _ = self._network_input(images, spacing_um)
        return shift_scores(bottleneck_embeddings(self.net, x), self.shift_stats).numpy()

    def spacing_note(self, name: str, spacing_um: tuple[float, float] | None) -> str | None:
        """The one warning line for an input of unknown spacing fed to a spacing-aware model (else None)."""
        if spacing_um is not None or not self.prep.spacing_aware:
            return None
        return (f"warning: {name}: pixel spacing unknown; resized to {self.prep.input_height} rows instead of "
                f"to the model's {self.prep.target_spacing_um[0]:g} x {self.prep.target_spacing_um[1]:g} um "
                f"(give --spacing ROW_UM COL_UM or a volume.json sidecar)")

    def _network_input(self, images: np.ndarray, spacing_um: tuple[float, float] | None = None
                       ) -> tuple[torch.Tensor, tuple[int, int]]:
        """(N, H, W) float [0, 1] -> resized, padded (N, 1, h', w') tensor and the unpadded working size."""
        images = np.asarray(images)
        if images.ndim != 3:
            raise ValueError(f"expected a batch of B-scans (N, H, W), got shape {images.shape}")
        _, h, w = images.shape
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None].to(self.device)
        return pad_to_multiple(resize_image(x, self.prep.working_size(h, w, spacing_um)), self.prep.pad_multiple)

    def probabilities(self, image: np.ndarray, spacing_um: tuple[float, float] | None = None) -> torch.Tensor:
        """(H, W) float [0, 1] -> (C, H, W) softmax probabilities at the input size."""
        return self.probabilities_batch(np.asarray(image)[None], spacing_um)[0]

    def __call__(self, image: np.ndarray, spacing_um: tuple[float, float] | None = None) -> np.ndarray:
        return self.predict_batch(np.asarray(image)[None], spacing_um)[0]

    @torch.inference_mode()
    def _forward(self, images: np.ndarray, spacing_um: tuple[float, float] | None, embed: bool
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One encoder pass per member: (N, C, H, W) probabilities on the input grid (the members' mean) and, with
        ``embed``, the first member's (N, C') pooled bottleneck features the shift score is computed from."""
        x, (wh, ww) = self._network_input(images, spacing_um)
        h, w = np.asarray(images).shape[-2:]
        emb, probs = None, None
        nets = self.nets
        for i, net in enumerate(nets):  # an ensemble averages its members' probabilities
            feats = net.encode(x)
            if embed and i == 0:
                emb = pooled_bottleneck(feats[-1])
            logits = net.decode(feats)[..., :wh, :ww].contiguous()  # channels_last on the CPU
            p = torch.softmax(logits.float(), dim=1)
            probs = p if probs is None else probs.add_(p)
        if len(nets) > 1:
            probs = probs.div_(len(nets))
        if (wh, ww) != (h, w):
            probs = F.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)
        return probs.cpu(), emb

    def probabilities_batch(self, images: np.ndarray, spacing_um: tuple[float, float] | None = None) -> torch.Tensor:
        """(N, H, W) float [0, 1] B-scans of one size and ``spacing_um`` (row, column; None = unknown)
        -> (N, C, H, W) softmax probabilities on the input grid.

        Same preprocessing as :meth:`probabilities`, applied to the whole batch at once.
        """
        return self._forward(images, spacing_um, embed=False)[0]

    def predict_batch(self, images: np.ndarray, spacing_um: tuple[float, float] | None = None) -> np.ndarray:
        """(N, H, W) B-scans of one size -> (N, H, W) uint8 masks, equal to calling the predictor on each."""
        return self._masks(self.probabilities_batch(images, spacing_um), images, spacing_um)

    def predict_with_scores(self, images: np.ndarray, spacing_um: tuple[float, float] | None = None
                            ) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, H, W) B-scans of one size -> (masks as :meth:`predict_batch`, shift scores as
        :meth:`shift_scores`), from one encoder pass (the scores are None without stored statistics)."""
        probs, emb = self._forward(images, spacing_um, embed=self.shift_stats is not None)
        scores = None if emb is None else shift_scores(emb, self.shift_stats).numpy()
        return self._masks(probs, images, spacing_um), scores

    def _masks(self, probs: torch.Tensor, images: np.ndarray, spacing_um: tuple[float, float] | None) -> np.ndarray:
        """Argmax of (N, C, H, W) probabilities, then the bundle's post-processing (unless turned off)."""
        # torch.max(...).indices, not argmax: same labels, but argmax over dim 1 of an (N, C, H, W) map
        # is ~150x slower on the CPU build we measured (benchmarks/bench_train.py, docs/performance.md)
        masks = torch.max(probs, dim=1).indices.numpy().astype(np.uint8)
        params = self.applied_postprocess
        if params is None:
            return masks
        return self.postprocess_masks(masks, images, spacing_um, params)

    def postprocess_masks(self, masks: np.ndarray, images: np.ndarray, spacing_um: tuple[float, float] | None,
                          params: dict | None = None) -> np.ndarray:
        """(N, H, W) masks of (N, H, W) B-scans post-processed with ``params`` (default: the bundle's), on the
        input grid: ``min_component_px`` counts working-resolution pixels, scaled to the input's."""
        images = np.asarray(images)
        h, w = images.shape[-2:]
        wh, ww = self.prep.working_size(h, w, spacing_um)
        scale = (h * w) / (wh * ww)  # input pixels per working pixel (area)
        fluid = range(1, self.num_classes)
        params = self.postprocess_params if params is None else params
        return np.stack([apply_postprocess(m, img, params, scale, fluid) for m, img in zip(masks, images)])


def sidecar_spacing_um(folder: Path, override: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """B-scan (row, column) um of a PNG/TIFF folder: ``override``, else its ``volume.json`` (z, y, x mm), else None."""
    from segclr.io.bscans import read_sidecar

    if override is not None:
        return check_spacing(override, f"{folder} (--spacing)")
    side = read_sidecar(folder) if folder.is_dir() else {}
    sp = side.get("spacing_mm")
    if sp is None:
        return None
    where = str(folder / "volume.json")
    if not isinstance(sp, (list, tuple)) or len(sp) != 3 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in sp):
        raise InputError(f"{where}: spacing_mm must be three numbers [z, y, x] in mm, got {sp!r}")
    return check_spacing((sp[1] * 1000.0, sp[2] * 1000.0), where)


def list_images(folder: str | Path) -> list[Path]:
    """The PNG/TIFF B-scans of a folder, sorted (see :func:`segclr.io.bscans.list_bscans`)."""
    return list_bscans(folder)


def predict_folder(checkpoint: str | Path, input_dir: str | Path, output_dir: str | Path,
                   overwrite: bool = False, progress: bool = True,
                   spacing_um: tuple[float, float] | None = None, postprocess: bool = True,
                   predictor: Predictor | None = None) -> list[Path]:
    """Write one mask PNG per input B-scan (same file name); returns the written paths.

    The B-scans' spacing is ``spacing_um`` (row, column), else the folder's ``volume.json``, else unknown.
    ``postprocess=False`` writes the raw masks (no post-processing from the bundle); a given
    ``predictor`` is used as it is (its own ``postprocess`` setting).
    """
    input_dir, output_dir = Path(input_dir).resolve(), Path(output_dir).resolve()
    files = list_images(input_dir)
    if output_dir == input_dir or input_dir in output_dir.parents:
        raise InputError(f"{input_dir}: output folder {output_dir} is inside the input folder; choose another --output")
    targets = [output_dir / (f.stem + ".png") for f in files]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise InputError(f"{existing[0]}: output exists ({len(existing)} files would be overwritten); pass --overwrite")
    predictor = predictor or Predictor(checkpoint, postprocess=postprocess)
    spacing = sidecar_spacing_um(input_dir, spacing_um)
    images = [read_image(f) for f in files]  # validate every input before writing anything
    note = predictor.spacing_note(str(input_dir), spacing)
    if note:
        print(note, flush=True)
    for img, target in tqdm(list(zip(images, targets)), desc="predict", unit="B-scan", disable=not progress):
        write_mask(target, predictor(img, spacing))
    return targets
