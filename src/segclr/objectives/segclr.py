"""SegCLR: joint supervised and contrastive training (Gomariz et al., arXiv:2405.05336).

Also serves ``multi_domain`` (labels from several domains, contrastive over all),
``ssl_pretrain`` (the contrastive term alone, the SimCLR/SimSiam pretraining baseline) and
``svdna_segclr_uda`` (SegCLR UDA whose labeled crops are SVDNA-restyled, see segclr.data.svdna).

    L = lambda_con * mean_d Lcon(d) + lambda * Lsup     (lambda_con = 1 but in the study's control)

over the unlabeled domains d (UDA: source and target, which gives the paper's
``1/2 (Lcon_src + Lcon_tgt)``; DG: source only). Both terms are trained from the first step.

All images of a step (the labeled batch and both views of every domain's pairs) go through
the encoder in one pass: one large batch is faster than five small ones, and BatchNorm sees
every domain of the step (``objective.bn_stats=joint``; ``labeled`` keeps the unlabeled images
out of the labeled batch's statistics, the study's BatchNorm control). Only the labeled part is
decoded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segclr.config import RunConfig
from segclr.data.pairs import pair_is_augmented
from segclr.data.svdna import build_restyle, restyled_labeled
from segclr.io.images import InputError
from segclr.losses import negatives_per_query, nt_xent_logits, simsiam_loss
from segclr.models import ChannelProjectionHead, PoolProjectionHead, SimSiamPredictor, UNet, count_parameters
from segclr.objectives.base import Objective, StepOutput, forward_split, supervised_loss


class NoNegativesError(InputError):
    """A contrastive term had no negative left for any query: it would train nothing (the data's fault)."""


def build_head(cfg: RunConfig, net: UNet) -> nn.Module:
    stage = net.feature_info[cfg.model.head_stage]
    if cfg.model.head == "ch":
        side = cfg.data.crop_size // stage.reduction
        return ChannelProjectionHead(
            stage.channels, (side, side), cfg.model.head_channels, cfg.model.head_hidden, cfg.model.embedding_dim
        )
    return PoolProjectionHead(stage.channels, cfg.model.head_hidden, cfg.model.embedding_dim)


class SegCLRObjective(Objective):
    def __init__(self, cfg: RunConfig, net: UNet) -> None:
        super().__init__(cfg, net)
        self.sup_loss = supervised_loss(cfg)
        self.head = build_head(cfg, net)
        self.predictor = (
            SimSiamPredictor(cfg.model.embedding_dim, max(1, cfg.model.embedding_dim // 2))
            if cfg.objective.contrastive_loss == "simsiam"
            else None
        )
        self.domains = list(cfg.unlabeled_domains)
        self.augment_pairs = pair_is_augmented(cfg.data.pairs)
        # Ps/Ps+a: same-volume slices within the pair distance would be false negatives; Pa masks nothing.
        self.mask_neighbours = cfg.data.pairs in ("s", "s+a")
        self.svdna = build_restyle(cfg)  # svdna_segclr_uda: labeled crops restyled toward target crops

    def describe(self, net: UNet) -> str:
        unet = count_parameters(net)
        head = count_parameters(self.head) + (count_parameters(self.predictor) if self.predictor else 0)
        name = {"ch": "Cch", "pool": "Cpool"}[self.cfg.model.head]
        extra = " + SimSiam predictor" if self.predictor else ""
        return (
            f"UNet {unet:,} parameters; {name} head{extra} {head:,} parameters "
            f"(+{100.0 * head / unet:.2f} % over the UNet, training only)"
        )

    def _contrastive(self, z1: Tensor, z2: Tensor, pairs: dict, domain: str, logs: dict) -> Tensor:
        if self.predictor is not None:
            return simsiam_loss(self.predictor(z1), self.predictor(z2), z1, z2)
        masking = {}
        if self.mask_neighbours:
            masking = {"groups": pairs["group"], "slices": (pairs["slice1"], pairs["slice2"]),
                       "window": self.cfg.data.pair_distance}
        logits, targets = nt_xent_logits(z1, z2, self.cfg.objective.temperature, **masking)
        negatives = negatives_per_query(logits)
        most = negatives.max().detach().clone()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(most, op=torch.distributed.ReduceOp.MAX)  # every rank decides alike
        if int(most) == 0:
            raise NoNegativesError(
                f"the contrastive term of domain {domain} has no negatives: every other pair of the batch is a "
                f"neighbouring slice of the same volume. Use more volumes, a larger data.batch_size, a smaller "
                f"data.pair_distance or Pa pairs (data.pairs=a)")
        # Keys per query after the DDP gather (2 x global pairs): evidence that all ranks' negatives count.
        logs["con/keys"] = float(logits.shape[1])
        logs[f"con/negatives_{domain}"] = negatives.float().mean()
        logs[f"con/negatives_min_{domain}"] = negatives.min().float()
        return F.cross_entropy(logits, targets)

    def step(self, net: UNet, batch: dict, augment: nn.Module) -> StepOutput:
        # ssl_pretrain has no labeled stream: the contrastive term alone trains the encoder
        x, y = (self.labeled_batch(augment, restyled_labeled(self.svdna, batch, augment))
                if "labeled" in batch else (None, None))
        chunks, sizes = ([x], [len(x)]) if x is not None else ([], [0])
        for d in self.domains:
            v1, v2 = batch[d]["view1"], batch[d]["view2"]
            if self.augment_pairs:
                v1, _ = augment(v1)
                v2, _ = augment(v2)
            chunks += [v1, v2]
            sizes += [len(v1), len(v2)]
        labeled = chunks[0] if x is not None else None
        feats = forward_split(net, net.encode, labeled, chunks[1:] if x is not None else chunks,
                              self.cfg.objective.bn_stats)
        n_lab = sizes[0]
        sup = self.sup_loss(net.decode([f[:n_lab] for f in feats]), y) if n_lab else feats[-1].new_zeros(())

        z = self.head(feats[self.cfg.model.head_stage][n_lab:])
        logs: dict[str, Tensor | float] = {"loss/sup": sup.detach()}
        con_terms = []
        offset = 0
        for k, d in enumerate(self.domains):
            n1, n2 = sizes[1 + 2 * k], sizes[2 + 2 * k]
            z1, z2 = z[offset:offset + n1], z[offset + n1:offset + n1 + n2]
            offset += n1 + n2
            term = self._contrastive(z1, z2, batch[d], d, logs)
            logs[f"loss/con_{d}"] = term.detach()
            con_terms.append(term)
        con = torch.stack(con_terms).mean()
        loss = self.cfg.objective.lambda_con * con + self.cfg.objective.lambda_sup * sup
        logs["loss/con"] = con.detach()
        return StepOutput(loss, logs)
