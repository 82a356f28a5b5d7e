"""Speed of segclr on one machine: GEMM limit, training, data path, inference, memory.

Usage::

    segclr bench [--device cpu|cuda] [--out DIR] [--steps N] [--quick]
                                     [--rounds R] [--threads T] [--variants fp32,bf16,fp32-s2d,...]
                                     [--no-sweep] [--no-profile]

Everything runs on the demo config's half-resolution shapes (batch 8, crop 128, UNet base 8,
depth 4; SegCLR UDA with the Cch head, Pa pairs, unlabeled spectralis + cirrus_like) and, in one run:

1. **GEMM limit**: fp32 (and bf16 on CUDA, or when a bf16 variant runs) throughput of a large square
   matmul, GFLOP/s (best of all samples; samples are taken before every round, so the limit sees the
   same machine state as the training rows).
2. **Training**: the supervised step and the SegCLR UDA step, each (a) through segclr's real path,
   ``SegCLRModule`` driven by a ``lightning.Trainer`` (no logger, checkpoint or progress bar; steps
   timed by a Callback between consecutive ``on_train_batch_start`` calls, after warm-up) and (b) a
   plain PyTorch loop on the *same module object* (``objective.step`` + AdamW + cosine schedule,
   zero_grad/backward/step). Both consume the same fixed in-memory batches drawn once from the real
   datamodule. Rounds interleave the paths (and alternate their order), so machine noise hits both.
   Model FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` over one forward+backward of the
   step with augmentation switched off (UNet + head + the NT-Xent matmul).
3. **Data path**: the datamodule's streams through ``CombinedLoader`` + DataLoader collation plus the
   ``BatchAugment`` calls one step makes (labeled batch, and both views of every domain for Pa).
4. **Inference**: a model bundle saved with ``save_bundle`` + ``bundle_metadata``, loaded by ``Predictor``,
   on 49- and 128-slice volumes of 496x512 B-scans (Spectralis' default) through the volume path of
   ``segclr predict`` (``segclr.inference.volumes.segment_volume``, 8 B-scans per batch), and 49
   B-scans one per ``Predictor.__call__`` (folder prediction, evaluation). Also timed, for comparison
   only: the UNet forward and the final argmax of one batch, the volume path with
   ``torch.max(probs, 1).indices`` in place of ``argmax(1)``, and the volume path under every other
   variant (bf16 autocast / channels_last weights / another stem).
5. **Peak resident memory** (``ru_maxrss``; on Linux also the split between rendering the domains and
   ``fit`` itself, via /proc/self/clear_refs) of training (a real ``segclr.training.trainer.fit`` of the
   demo's SegCLR UDA config, shortened) and of inference, each in a fresh subprocess.

On CPU a sweep also times the plain-loop steps at 1, 2, 4, ... N torch threads, with the default OpenMP wait
policy and with ``OMP_WAIT_POLICY=PASSIVE`` (read at start-up, hence a subprocess each).

Variants (``--variants``): ``fp32``; ``bf16`` = bf16 autocast (Lightning ``precision="bf16-mixed"``, the
plain loop ``torch.autocast(device, torch.bfloat16)``); ``-cl`` = module converted with
``.to(memory_format=torch.channels_last)`` (convolutions then run NHWC; inputs stay as produced);
``fp32-s2d`` / ``bf16-s2d`` = the UNet with the space-to-depth stem (``model.stem=s2d``: no
full-resolution stage; FLOPs counted for that network), ``fp32-s2dr`` = the ``s2d_refine`` stem
(s2d plus one thin full-resolution layer); another stem's volume-path time is taken on raw masks.
Default: ``fp32`` on CPU, the four conv-stem variants on CUDA. The target verdicts use the first variant listed.
Every worker runs in its own interpreter; ``--threads`` applies to all of them except the sweep.

Writes ``bench.json`` and ``bench.md`` into ``--out`` (default ``segclr-bench/``; ``benchmarks/out/`` when run as
``python benchmarks/bench_train.py`` from a clone) and prints both. ``python -m segclr.bench`` is the same command.

Modules, one per section: :mod:`.common` (constants, timing and memory helpers), :mod:`.gemm` (GEMM limit),
:mod:`.training` (training step, Lightning vs plain loop), :mod:`.datapath` (data path), :mod:`.profile`
(torch.profiler table), :mod:`.inference`, :mod:`.memory` (peak RSS of a real fit), :mod:`.threads` (CPU sweep),
:mod:`.machine` (CPU/GPU facts, machine load), :mod:`.report` (summary, verdicts, bench.md) and :mod:`.driver`
(options, workers in fresh interpreters, main).
"""
