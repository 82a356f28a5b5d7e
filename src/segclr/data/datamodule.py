"""Training streams: labeled slices, and positive pairs from each unlabeled domain.

Each stream is an endless ``IterableDataset`` of random crops drawn from volumes held in
memory at working resolution (the benchmark is small). Augmentation is *not* done here: the
LightningModule applies :class:`segclr.data.augment.BatchAugment` to whole batches on the
training device. Lightning's ``CombinedLoader`` zips the streams, so one step sees a labeled
batch and one batch of pairs per unlabeled domain.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import CombinedLoader
from scipy import ndimage
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from segclr.config import FLUID_CROP_BY, RunConfig
from segclr.data.domains import DomainBank, Volume
from segclr.data.pairs import slice_pair
from segclr.data.preprocess import Preprocessing, median_working_spacing, to_working
from segclr.io.images import InputError


@dataclass
class WorkingVolume:
    """A volume at working resolution: images (S, 1, h, w) float, masks (S, h, w) long."""

    domain: str
    patient: int
    images: Tensor
    masks: Tensor


def to_working_volume(vol: Volume, prep: Preprocessing) -> WorkingVolume:
    pairs = [to_working(img, msk, prep, vol.spacing_um) for img, msk in zip(vol.images, vol.masks)]
    return WorkingVolume(vol.domain, vol.patient, torch.stack([p[0] for p in pairs]),
                         torch.stack([p[1] for p in pairs]))


def pad_to_crop(vol: WorkingVolume, crop: int) -> WorkingVolume:
    """Zero-pad (bottom/right, label 0) a working volume narrower or shorter than the training crop.

    Happens only for grids the target spacing does not cover, e.g. a 1024 x 512 Cirrus B-scan
    resized by the height rule (spacing unknown or ``data.spacing_aware: false``) to 248 x 124 at 248 rows.
    """
    h, w = vol.images.shape[-2:]
    ph, pw = max(0, crop - h), max(0, crop - w)
    if not (ph or pw):
        return vol
    images = torch.nn.functional.pad(vol.images, (0, pw, 0, ph))
    masks = torch.nn.functional.pad(vol.masks, (0, pw, 0, ph))
    return WorkingVolume(vol.domain, vol.patient, images, masks)


def _crop_origin(h: int, w: int, crop: int, rng: np.random.Generator,
                 centre: tuple[int, int] | None = None) -> tuple[int, int]:
    if h < crop or w < crop:
        raise ValueError(f"crop size {crop} is larger than the working image {h}x{w}; lower data.crop_size")
    if centre is None:
        return int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
    cy, cx = centre
    return int(np.clip(cy - crop // 2, 0, h - crop)), int(np.clip(cx - crop // 2, 0, w - crop))


class _Stream(IterableDataset):
    """Endless stream whose k-th sample depends only on (seed, k): counter-based randomness.

    ``start`` skips the first samples, so a resumed run draws exactly the samples the
    uninterrupted run would have drawn (no generator state to save).
    """

    seed: int
    start: int = 0

    def __iter__(self):
        k = self.start
        while True:
            yield self.sample(np.random.default_rng([self.seed, k]), k)
            k += 1

    def sample(self, rng: np.random.Generator, k: int) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


class LabeledSlices(_Stream):
    """Endless random (image, mask) crops; with ``fluid_crop_prob`` the crop is centred on fluid.

    ``fluid_crop_by`` says how the centre is picked: ``"pixel"``, a fluid pixel of the slice uniformly
    (a large pocket gets most crops), or ``"component"``, a fluid component of the slice uniformly
    (8-connectivity) and then one of its pixels, so a small pocket is centred as often as a large one.
    """

    def __init__(self, volumes: list[WorkingVolume], crop: int, seed: int, fluid_crop_prob: float = 0.5,
                 fluid_crop_by: str = "pixel") -> None:
        if not volumes:
            raise ValueError("no labeled volumes for training")
        if fluid_crop_by not in FLUID_CROP_BY:
            raise ValueError(f"fluid_crop_by must be one of {', '.join(FLUID_CROP_BY)}, got {fluid_crop_by!r}")
        self.volumes, self.crop, self.seed, self.fluid_crop_prob = volumes, crop, seed, fluid_crop_prob
        self.fluid_crop_by = fluid_crop_by
        self._components: dict[tuple[int, int], list[Tensor]] = {}  # (volume, slice) -> pixels of each component

    def _slice_components(self, v: int, s: int) -> list[Tensor]:
        if (v, s) not in self._components:
            labels, n = ndimage.label((self.volumes[v].masks[s] > 0).numpy(), structure=np.ones((3, 3), dtype=bool))
            labels = torch.from_numpy(labels)
            pixels = torch.nonzero(labels)                                # row-major, as torch.nonzero(mask)
            owner = labels[pixels[:, 0], pixels[:, 1]]
            self._components[(v, s)] = [pixels[owner == c] for c in range(1, n + 1)]
        return self._components[(v, s)]

    def sample(self, rng: np.random.Generator, k: int) -> dict:
        v = int(rng.integers(len(self.volumes)))
        vol = self.volumes[v]
        s = int(rng.integers(len(vol.images)))
        mask = vol.masks[s]
        centre = None
        if rng.random() < self.fluid_crop_prob:
            if self.fluid_crop_by == "component":
                comps = self._slice_components(v, s)
                fluid = comps[int(rng.integers(len(comps)))] if comps else mask.new_zeros((0, 2))
            else:
                fluid = torch.nonzero(mask > 0)
            if len(fluid):
                centre = tuple(fluid[int(rng.integers(len(fluid)))].tolist())
        y, x = _crop_origin(*mask.shape, self.crop, rng, centre)
        c = self.crop
        return {"image": vol.images[s, :, y:y + c, x:x + c], "mask": mask[y:y + c, x:x + c]}


class SlicePairs(_Stream):
    """Endless positive pairs (view1, view2, volume id, slice of each view) drawn with :func:`slice_pair`.

    Samples come in batches of ``batch_size`` (the DataLoader's). Within a batch the volumes
    take turns (a fresh random order per batch), so every batch holds pairs of as many volumes
    as it can; and the anchor slices of one volume's pairs are stratified over the volume, so
    they are spread out rather than bunched. Both matter for NT-Xent with Ps pairs, which masks
    same-volume negatives near the query: a batch must keep negatives from other volumes and
    from far slices. The sample still depends only on (seed, k).
    """

    def __init__(self, volumes: list[WorkingVolume], crop: int, mode: str, distance: int, seed: int,
                 batch_size: int = 1) -> None:
        if not volumes:
            raise ValueError("no unlabeled volumes for the contrastive term")
        self.volumes, self.crop, self.mode, self.distance, self.seed = volumes, crop, mode, distance, seed
        self.batch_size = max(1, int(batch_size))

    def sample(self, rng: np.random.Generator, k: int) -> dict:
        batch, pos = divmod(k, self.batch_size)
        n_vol = len(self.volumes)
        order = np.random.default_rng([self.seed, batch, 1]).permutation(n_vol)
        v = int(order[pos % n_vol])
        vol = self.volumes[v]
        # the m-th of this batch's `count` pairs from volume v takes its anchor in stratum m
        m, count = pos // n_vol, len(range(pos % n_vol, self.batch_size, n_vol))
        anchor = int((m + rng.random()) * len(vol.images) / count)
        i, j = slice_pair(len(vol.images), self.mode, self.distance, rng, anchor=anchor)
        y, x = _crop_origin(*vol.images.shape[-2:], self.crop, rng)
        c = self.crop
        return {
            "view1": vol.images[i, :, y:y + c, x:x + c],
            "view2": vol.images[j, :, y:y + c, x:x + c],
            "group": vol.patient,  # unique per volume within a domain
            "slice1": i,
            "slice2": j,
        }


def training_preprocessing(cfg: RunConfig, volumes: list[Volume]) -> Preprocessing:
    """The run's preprocessing: the height rule, plus a target spacing when ``data.spacing_aware``.

    The target spacing is ``data.target_spacing_um`` or the median spacing of the (labeled)
    training B-scans at ``input_height`` rows. Volumes of unknown spacing use the height rule
    (one warning line names them); with no known spacing at all the model has no target spacing.
    """
    base = Preprocessing(cfg.data.input_height, 2**cfg.model.depth)
    if not cfg.data.spacing_aware:
        return base
    known = [v for v in volumes if v.spacing_um is not None]
    unknown = [v for v in volumes if v.spacing_um is None]
    if unknown:
        names = ", ".join(sorted({v.names[0].split('#')[0] for v in unknown})[:3])
        print(f"[segclr] warning: {len(unknown)} training volume(s) of unknown pixel spacing ({names}): "
              f"resized to {cfg.data.input_height} rows", flush=True)
    if cfg.data.target_spacing_um:
        target = tuple(cfg.data.target_spacing_um)
    elif known:
        target = median_working_spacing([v.spacing_um for v in known for _ in v.images],
                                        [img.shape[0] for v in known for img in v.images], cfg.data.input_height)
    else:
        return base
    return Preprocessing(cfg.data.input_height, 2**cfg.model.depth, target)


class SegCLRDataModule(L.LightningDataModule):
    """Builds the labeled stream and one pair stream per unlabeled domain of a :class:`RunConfig`."""

    def __init__(self, cfg: RunConfig, bank: DomainBank | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.bank = bank or DomainBank(cfg.data.simulation_seed, dataset=cfg.data.dataset or None,
                                       geometry=cfg.data.geometry)
        if cfg.data.dataset and not self.bank.external:
            raise ValueError(f"data.dataset is {cfg.data.dataset!r}, but the domain bank given holds the embedded "
                             f"benchmark")
        if not self.bank.external and (self.bank.geometry, self.bank.simulation_seed) != (
                cfg.data.geometry, cfg.data.simulation_seed):
            raise ValueError(f"the domain bank renders geometry {self.bank.geometry!r} with simulation seed "
                             f"{self.bank.simulation_seed}, but the config asks for {cfg.data.geometry!r} and "
                             f"{cfg.data.simulation_seed}")
        self.prep = Preprocessing(cfg.data.input_height, 2**cfg.model.depth)  # final once setup() knows the data
        self._labeled: list[WorkingVolume] = []
        self._unlabeled: dict[str, list[WorkingVolume]] = {}
        self.val_volumes: list[WorkingVolume] = []  # data.val_patients, held out of every stream
        self._start_step = 0

    # Resume: the streams are counter-based, so the step count is all the state there is.
    def state_dict(self) -> dict:
        step = self.trainer.global_step if self.trainer is not None else self._start_step
        return {"step": int(step)}

    def load_state_dict(self, state: dict) -> None:
        self._start_step = int(state.get("step", 0))

    def _spacing_reference(self, labeled: list, pair_vols: dict[str, list[Volume]]) -> list[Volume]:
        """The volumes whose spacing sets the default target: the source domain's training volumes.

        Every mode of one benchmark then shares one working grid (the upper bound, trained on the
        target device, included: derived from Cirrus' fine rows alone the target would squeeze its
        columns 2x); without source volumes, the labeled ones, else the unlabeled ones.
        """
        cfg = self.cfg
        try:
            source = self.bank.volumes(cfg.data.source_domain, "source_train")
        except (InputError, KeyError):
            source = []
        return (source or [v for _, _, vols in labeled for v in vols]
                or [v for vols in pair_vols.values() for v in vols])

    def setup(self, stage: str | None = None) -> None:
        if self._labeled or self._unlabeled:
            return
        try:
            self._setup()
        except BaseException:
            self._labeled, self._unlabeled, self.val_volumes = [], {}, []  # never half set up: a retry starts clean
            raise

    def _setup(self) -> None:
        cfg = self.cfg
        labeled = [(d, r, self.bank.volumes(d, r)) for d, r in cfg.labeled_sets]
        pair_vols: dict[str, list[Volume]] = {}
        for d in cfg.unlabeled_domains:
            vols = self.bank.volumes(d, "source_train" if d == cfg.data.source_domain else "target_train")
            if d != cfg.data.source_domain and cfg.data.target_patients >= 0:
                vols = vols[: cfg.data.target_patients]
            pair_vols[d] = vols
        self.prep = training_preprocessing(cfg, self._spacing_reference(labeled, pair_vols))
        labeled, pair_vols, val = self._hold_out(labeled, pair_vols)
        self.val_volumes = [to_working_volume(v, self.prep) for v in val]
        for domain, role, vols in labeled:
            unlabeled = [v.names[0].split("#")[0] for v in vols if not v.labeled]
            if unlabeled:
                raise InputError(f"{unlabeled[0]}: domain {domain} role {role} trains with labels, "
                                 "but this volume has none")
            for v in vols:
                top = max(int(m.max()) for m in v.masks)
                if top >= cfg.model.num_classes:
                    raise InputError(f"{v.names[0].split('#')[0]}: label {top} but model.num_classes is "
                                     f"{cfg.model.num_classes} (RETOUCH needs 4)")
            self._labeled += [pad_to_crop(to_working_volume(v, self.prep), cfg.data.crop_size) for v in vols]
        for d, vols in pair_vols.items():
            self._unlabeled[d] = [pad_to_crop(to_working_volume(v, self.prep), cfg.data.crop_size) for v in vols]
        self._check_negatives()

    def _hold_out(self, labeled: list, pair_vols: dict[str, list[Volume]]) -> tuple[list, dict, list[Volume]]:
        """Take the ``data.val_patients`` of the source domain out of every training stream.

        Their labeled source B-scans become the validation split; the same patients are also removed
        from the labeled sets of role ``source_train`` of other domains (the upper bound's renderings)
        and from the source domain's contrastive pairs, so no view of them is trained on.
        """
        cfg, src = self.cfg, self.cfg.data.source_domain
        val_ids = set(cfg.data.val_patients)
        if not val_ids:
            return labeled, pair_vols, []
        try:
            source = self.bank.volumes(src, "source_train")
        except (InputError, KeyError):
            source = []
        known = sorted({v.patient for v in source})
        missing = sorted(val_ids - set(known))
        if missing:
            raise InputError(f"data.val_patients {missing}: not among the labeled training patients of domain {src} "
                             f"({', '.join(map(str, known)) or 'none'}); the validation split is taken from them, "
                             "never "
                             f"from the test patients")
        if val_ids >= set(known):
            raise InputError(f"data.val_patients {sorted(val_ids)}: holds out every training patient of domain {src}; "
                             f"keep at least one for training")
        val = [v for v in source if v.patient in val_ids]
        kept = [(d, r, [v for v in vols if not (r == "source_train" and v.patient in val_ids)])
                for d, r, vols in labeled]
        pairs = {d: [v for v in vols if not (d == src and v.patient in val_ids)] for d, vols in pair_vols.items()}
        return kept, pairs, val

    def _check_negatives(self) -> None:
        """Ps/Ps+a with NT-Xent masks same-volume slices near the query: refuse data that leaves none."""
        cfg = self.cfg
        if not cfg.uses_contrastive or cfg.objective.contrastive_loss != "ntxent" or cfg.data.pairs == "a":
            return
        reach = 2 * cfg.data.pair_distance + 1
        for d, vols in self._unlabeled.items():
            if len(vols) == 1 and len(vols[0].images) <= reach:
                raise InputError(
                    f"domain {d}: one volume of {len(vols[0].images)} B-scans leaves Ps pairs no negatives "
                    f"(slices within data.pair_distance={cfg.data.pair_distance} of the query are masked); "
                    f"add volumes, lower data.pair_distance or use data.pairs=a")

    def _seed(self, stream: int) -> int:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        return self.cfg.trainer.seed * 1000 + stream * 100 + rank

    def train_dataloader(self) -> CombinedLoader:
        cfg = self.cfg
        loaders = {}
        if self._labeled:
            loaders["labeled"] = DataLoader(
                LabeledSlices(self._labeled, cfg.data.crop_size, self._seed(0), cfg.data.fluid_crop_prob,
                              cfg.data.fluid_crop_by),
                batch_size=cfg.data.batch_size,
            )
        for k, (d, vols) in enumerate(self._unlabeled.items(), start=1):
            loaders[d] = DataLoader(
                SlicePairs(vols, cfg.data.crop_size, cfg.data.pairs, cfg.data.pair_distance, self._seed(k),
                           cfg.data.batch_size),
                batch_size=cfg.data.batch_size,
            )
        for loader in loaders.values():
            loader.dataset.start = self._start_step * cfg.data.batch_size
        return CombinedLoader(loaders, mode="max_size_cycle")
