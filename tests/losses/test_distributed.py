"""NT-Xent under DDP: 2 CPU processes (gloo) reproduce the single-process loss and gradients."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from segclr.losses import gather_no_grad, gather_with_grad, nt_xent, nt_xent_logits

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)

WORLD_SIZE = 2
N_GLOBAL = 8
DIM_IN, DIM = 6, 16
TEMPERATURE = 0.1


def _global_batch():
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn(N_GLOBAL, DIM_IN, generator=gen, dtype=torch.float64)
    x2 = torch.randn(N_GLOBAL, DIM_IN, generator=gen, dtype=torch.float64)
    groups = torch.tensor([0, 0, 1, 2, 2, 1, 3, 3])  # group 1 and 2 straddle the two ranks
    encoder = torch.nn.Linear(DIM_IN, DIM).double()
    with torch.no_grad():
        encoder.weight.copy_(torch.randn(DIM, DIM_IN, generator=gen, dtype=torch.float64))
        encoder.bias.copy_(torch.randn(DIM, generator=gen, dtype=torch.float64))
    return x1, x2, groups, encoder


def _run(encoder, x1, x2, groups):
    """Loss, input-embedding grads and encoder weight grad for one (local or global) batch."""
    encoder.zero_grad()
    z1 = encoder(x1).detach().requires_grad_(True)
    z2 = encoder(x2).detach().requires_grad_(True)
    loss = nt_xent(z1, z2, temperature=TEMPERATURE, groups=groups)
    loss.backward()
    # Chain the embedding grads into the encoder, as autograd would through a real model.
    encoder(x1).backward(z1.grad)
    encoder(x2).backward(z2.grad)
    return loss.detach(), z1.grad, z2.grad, encoder.weight.grad.clone()


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=timedelta(seconds=30),
    )
    try:
        x1, x2, groups, encoder = _global_batch()
        n = N_GLOBAL // WORLD_SIZE
        local = slice(rank * n, (rank + 1) * n)
        results = {}
        for name, g in (("plain", None), ("groups", groups)):
            g_local = None if g is None else g[local]
            loss, g1, g2, w_grad = _run(encoder, x1[local], x2[local], g_local)
            dist.all_reduce(w_grad)  # what DDP does to parameter grads, before dividing by W
            logits, targets = nt_xent_logits(
                encoder(x1[local]), encoder(x2[local]), TEMPERATURE, groups=g_local
            )
            results[name] = dict(
                loss=loss,
                grad1=g1,
                grad2=g2,
                ddp_weight_grad=w_grad / WORLD_SIZE,
                logits_shape=tuple(logits.shape),
                candidates_per_row=torch.isfinite(logits).sum(dim=1),
                targets=targets,
            )
        results["gathered_ids"] = gather_no_grad(groups[local])
        results["gathered_x"] = gather_with_grad(x1[local])
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD_SIZE, join=True)
    return [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD_SIZE)]


@pytest.mark.parametrize("name", ["plain", "groups"])
def test_mean_of_rank_losses_equals_global_loss(rank_results, name):
    x1, x2, groups, encoder = _global_batch()
    single, *_ = _run(encoder, x1, x2, None if name == "plain" else groups)
    mean = torch.stack([r[name]["loss"] for r in rank_results]).mean()
    assert torch.allclose(mean, single, atol=1e-5, rtol=0)


def test_each_rank_sees_all_global_candidates(rank_results):
    n = N_GLOBAL // WORLD_SIZE
    for rank, r in enumerate(rank_results):
        res = r["plain"]
        assert res["logits_shape"] == (2 * n, 2 * N_GLOBAL)
        assert (res["candidates_per_row"] == 2 * N_GLOBAL - 1).all()
        local = torch.arange(n) + rank * n
        assert torch.equal(res["targets"], torch.cat([local + N_GLOBAL, local]))
        # With groups, same-volume negatives from the *other* rank are masked too.
        assert (rank_results[rank]["groups"]["candidates_per_row"] < 2 * N_GLOBAL - 1).any()


@pytest.mark.parametrize("name", ["plain", "groups"])
def test_gradients_match_single_process(rank_results, name):
    x1, x2, groups, encoder = _global_batch()
    _, g1, g2, w_grad = _run(encoder, x1, x2, None if name == "plain" else groups)
    n = N_GLOBAL // WORLD_SIZE
    for rank, r in enumerate(rank_results):
        local = slice(rank * n, (rank + 1) * n)
        # The gather's backward sums all ranks' losses into the local slice: W x the global grad.
        assert torch.allclose(r[name]["grad1"], WORLD_SIZE * g1[local], atol=1e-6, rtol=0)
        assert torch.allclose(r[name]["grad2"], WORLD_SIZE * g2[local], atol=1e-6, rtol=0)
        # So DDP's average of parameter grads over ranks is exactly the global gradient.
        assert torch.allclose(r[name]["ddp_weight_grad"], w_grad, atol=1e-6, rtol=0)


def test_gathers_concatenate_in_rank_order(rank_results):
    x1, _, groups, _ = _global_batch()
    for r in rank_results:
        assert torch.equal(r["gathered_ids"], groups)
        assert torch.equal(r["gathered_x"], x1)


def test_gather_is_identity_without_process_group():
    x = torch.randn(3, 4)
    assert gather_with_grad(x) is x
    assert gather_no_grad(x) is x
