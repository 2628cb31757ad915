"""GPU sampling throughput of the official 256 px ADE20K network against the reference algorithm (a prepared script).

Random (seeded) weights, the reference 25-step mode (ancestral on the `ddim25` timesteps, guidance 1.5,
extrapolation 0.8, dynamic thresholding 0.95), batch 8. Rows:
- reference: the reference's algorithm (`benchmarks.speed.reference_denoise`): y_t redrawn every step, two
  forwards per step (y_t, then the all-zero null label, SPADE recomputed per block), the network's convs in
  fp16 as the published `--use_fp16 True` commands run it;
- ours: `Pipeline.generate` (one batched guidance forward, shared encoder, cached null SPADE), bf16 and fp16
  autocast, then channels_last and a per-block `torch.compile` of the U-Net (compile time reported apart).
Per row: images/s, seconds per image, speed-up, executed TFLOP per image (`FlopCounterMode`, counted once) and
the fraction of the device's dense bf16/fp16 peak. Also: the aten attention kernel SDPA picks, host syncs per
step, and an fp32 CPU-vs-GPU check of one guided forward and of a 3-step generate. Every optional row is
guarded: a failure prints its reason and the run goes on; a time budget (`--budget`, default 240 s) skips or
stops what no longer fits, so the whole run stays under 5 minutes.

    python -m benchmarks.gpu [--batch 8] [--steps 25] [--precision bf16,fp16] [--repeats 2] [--budget 240]
                             [--compile default|max-autotune-no-cudagraphs|off] [--compile-scope label-free|all]
                             [--check-size 128] [--device cuda|cpu] [--tiny] [--threads N]

`--tiny`: `scdm.presets.TINY_UNET` at 32 px, 4 steps, batch 2, no compile, 1 thread; on the CPU unless `--device cuda`:
a smoke run of every code path in seconds (the test suite runs it).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import signal
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from scdm.config import LabelDiffusionConfig, LabelSchedule, LabelSpec, ModelCard
from scdm.gaussian import Diffusion
from scdm.guidance import ConditionalDenoiser
from scdm.layers import AttentionBlock, ResBlock, SPADEResBlock
from scdm.pipeline import Pipeline, to_uint8
from scdm.precision import autocast_dtype
from scdm.presets import OFFICIAL_CARDS, TINY_UNET
from scdm.samplers import X0Processing, sample
from scdm.unet import UNet

from .speed import reference_denoise, time_call  # the reference's two-forward denoiser; warm-up + median timing

# Dense (no sparsity) bf16 / fp16 tensor-core peak in TFLOPS from NVIDIA's datasheets; first substring match wins.
PEAK_TFLOPS = (("GH200", 989), ("H200 NVL", 835), ("H200", 989), ("H100 NVL", 835), ("H100 PCIe", 756),
               ("H100", 989), ("H800", 989), ("A100", 312), ("A800", 312), ("L40S", 362), ("L40", 181),
               ("L4", 121), ("B200", 2250))
FORWARD_TOL = 1e-3  # CPU vs GPU fp32 forward: max |diff| <= FORWARD_TOL * max(1, max |output|)
GENERATE_TOL = 1e-2  # 3-step generate, max |diff| of the final x̂_0 in [-1, 1] (step 1 divides eps by ~sqrt(ᾱ) = 0.01)


class OutOfTime(Exception):
    """The time budget ran out inside a row."""


@dataclasses.dataclass
class Row:
    name: str
    precision: str
    images_per_s: float | None = None
    tflop_per_image: float | None = None
    note: str = ""


class Bench:
    """Shared state of one run: the clock, the budget and the rows."""

    def __init__(self, budget: float):
        self.start = time.monotonic()
        self.budget = budget
        self.rows: list[Row] = []
        self.slowest_run = 0.0  # seconds of the slowest timed generate so far (estimates what still fits)
        self.last_reason = ""  # why the last guarded call returned None

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def log(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.start:6.1f} s] {msg}", flush=True)

    @contextlib.contextmanager
    def deadline(self):
        """Raise OutOfTime in this (main) thread when the budget ends; SIGALRM, where the platform has it."""
        if not hasattr(signal, "setitimer"):
            yield
            return

        def on_alarm(signum, frame):
            raise OutOfTime(f"time budget of {self.budget:g} s used up")

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, max(self.left(), 0.01))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    def guarded(self, what: str, fn, need: float = 0.0):
        """fn() under the deadline; a failure or the end of the budget prints why and returns None."""
        if self.left() < need:
            self.last_reason = f"skipped: time budget ({self.left():.1f} s left, about {need:.1f} s needed)"
        else:
            try:
                with self.deadline():
                    return fn()
            except Exception as e:  # noqa: BLE001  an optional row must not end the run: say why and go on
                first_line = (str(e).strip().splitlines() or [""])[0][:300]
                if isinstance(e, OutOfTime) or "OutOfTime" in first_line:  # torch.compile wraps it
                    self.last_reason = f"stopped: time budget of {self.budget:g} s used up"
                else:
                    self.last_reason = f"failed: {type(e).__name__}: {first_line}"
        self.log(f"{what}: {self.last_reason}")
        return None


# ----- model, inputs, reference -----

def build(tiny: bool, seed: int = 0) -> tuple[UNet, ModelCard]:
    """The official ADE20K card (or a tiny one) with random weights; zero-initialised layers get torch's default init.

    The published layout zero-initialises every residual branch's last conv and the output conv, which would make
    the output exactly 0 and the CPU-vs-GPU check empty. Kappa (class-wise Label Diffusion) is a geometric ramp:
    speed does not depend on it, since every conv runs on the whole label map.
    """
    card = (ModelCard(unet=TINY_UNET, labels=LabelSpec(num_classes=12), name="tiny",
                      label_diffusion=LabelDiffusionConfig(LabelSchedule.CLASSWISE)) if tiny
            else OFFICIAL_CARDS["ade20k"]())
    k = card.labels.num_classes
    card = dataclasses.replace(card, label_diffusion=dataclasses.replace(
        card.label_diffusion, kappa=tuple(float(v) for v in np.geomspace(1, 300, k))))
    torch.manual_seed(seed)
    model = UNet(card.unet)
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and not m.weight.any():
            m.reset_parameters()
    return model.eval(), card


def make_labels(card: ModelCard, batch: int, seed: int = 0) -> torch.Tensor:
    """(B, H, W) raw ids in 8x8-pixel blocks of random classes (speed does not depend on the layout)."""
    spec, size = card.labels, card.unet.image_size
    ids = torch.tensor(spec.raw_ids if spec.raw_ids is not None else range(spec.num_classes))
    g = torch.Generator().manual_seed(seed)
    blocks = ids[torch.randint(len(ids), (batch, size // 8, size // 8), generator=g)]
    return blocks.repeat_interleave(8, 1).repeat_interleave(8, 2)


def reference_model(model: UNet, dtype: torch.dtype | None) -> UNet:
    """A copy with every conv in `dtype`, as guided-diffusion's `convert_to_fp16` (here also the 256 -> 6 output conv)."""
    if dtype is None:
        return model
    ref = copy.deepcopy(model)
    for m in ref.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            m.to(dtype)
    return ref


def reference_generate(model: UNet, pipe: Pipeline, labels: torch.Tensor, steps: int, dtype: torch.dtype | None,
                       seed: int = 0) -> np.ndarray:
    """The reference's sampling loop: y_t ~ q(y_t | y) and two forwards per step, noise from one device generator."""
    r = pipe.resolve(steps=steps)
    diffusion = Diffusion.from_config(pipe.card.diffusion, r.steps, r.spacing)
    y = pipe.encode(labels)
    g = torch.Generator(pipe.device).manual_seed(seed)
    shape = (y.shape[0], 3, *y.shape[-2:])
    noise = lambda: torch.randn(shape, generator=g, device=pipe.device)  # noqa: E731

    def denoise(x, t):
        y_t = pipe.label_diffusion.q_sample(y, t, generator=g)
        return reference_denoise(model, y_t, r.guidance)(x.to(dtype or x.dtype), t)

    with torch.no_grad():
        x0 = sample(r.sampler, denoise, diffusion, noise(), noise,
                    x0_processing=X0Processing(r.extrapolation, r.dynamic_threshold))
    return to_uint8(x0)


# ----- diagnostics -----

def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def one_step(pipe: Pipeline, labels: torch.Tensor, dtype: torch.dtype | None):
    """(x, t, y, ours): inputs of one step for one image and our guided denoiser over them."""
    y = pipe.encode(labels[:1])
    x = torch.randn(1, 3, *y.shape[-2:], device=pipe.device)
    t = torch.full((1,), 500, device=pipe.device)
    ours = ConditionalDenoiser(pipe.model, y, pipe.label_diffusion, [torch.Generator().manual_seed(0)],
                               pipe.card.sampler.guidance, num_classes=pipe.card.labels.num_classes,
                               autocast_dtype=dtype)
    return x, t, y, ours


def step_flops(pipe: Pipeline, labels: torch.Tensor, ref: UNet, ref_dtype: torch.dtype | None,
               dtype: torch.dtype | None) -> tuple[float, float]:
    """Executed FLOPs of one step for one image: (reference, two forwards; ours, one guided forward)."""
    x, t, y, ours = one_step(pipe, labels, dtype)
    ref_step = lambda: reference_denoise(ref, y, pipe.card.sampler.guidance)(x.to(ref_dtype or x.dtype), t)  # noqa: E731
    out = []
    with torch.no_grad():
        for fn in (ref_step, lambda: ours(x, t)):
            fn()  # fills the null-SPADE cache: count the steady state
            with FlopCounterMode(display=False) as counter:
                fn()
            out.append(float(counter.get_total_flops()))
    return out[0], out[1]


class OpRecorder(TorchDispatchMode):
    """Names of the aten ops run under it."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def attention_kernel(model: UNet, size: int, dtype: torch.dtype | None, device: torch.device) -> str:
    """The aten attention kernel the first AttentionBlock runs at its real feature size; "math" is the slow path."""
    ds = min(model.config.attention_ds)
    block = next(m for m in model.modules() if isinstance(m, AttentionBlock))
    x = torch.randn(2, block.qkv.in_channels, size // ds, size // ds, device=device)
    with torch.no_grad(), warnings.catch_warnings(), autocast(device, dtype), OpRecorder() as rec:
        warnings.simplefilter("ignore")
        block(x)
    names = sorted({op for op in rec.ops if "attention" in op})
    fused = [n for n in names if any(k in n for k in ("flash", "efficient", "cudnn"))]
    return ", ".join(fused) if fused else f"math fallback, no fused kernel ({', '.join(names) or 'bmm + softmax'})"


def count_syncs(fn) -> int:
    """Host-device synchronisations fn() makes (torch.cuda sync debug mode, one warning each)."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def guided_step_syncs(pipe: Pipeline, labels: torch.Tensor, dtype: torch.dtype | None) -> tuple[int, int] | None:
    """Synchronisations in one guided step of ours and in its U-Net forward alone (CUDA only)."""
    if pipe.device.type != "cuda":
        return None
    x, t, y, ours = one_step(pipe, labels, dtype)
    with torch.no_grad():
        ours(x, t)
        step = count_syncs(lambda: ours(x, t))
        ctx = pipe.model.label_context(torch.cat([y, torch.zeros_like(y)]), torch.arange(2, device=pipe.device) >= 1)
        with autocast(pipe.device, dtype):
            forward = count_syncs(lambda: pipe.model(x, t, ctx, labels_per_image=2))
    return step, forward


def peak_tflops(device: torch.device) -> tuple[float | None, str]:
    if device.type != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_TFLOPS:
        if key in name:
            return float(tflops), name
    return None, name


# ----- the rows -----

def time_row(bench: Bench, row: Row, fn, batch: int, repeats: int) -> None:
    """images/s of fn (one batch), warm-up + median of `repeats` (benchmarks.speed.time_call)."""
    need = bench.slowest_run * (repeats + 1)
    t0 = time.monotonic()
    seconds = bench.guarded(f"{row.name} [{row.precision}]", lambda: time_call(fn, repeats), need)
    if seconds is None:
        row.note = bench.last_reason.split(":")[0] + ", see log"
    else:
        row.images_per_s = batch / seconds
        bench.slowest_run = max(bench.slowest_run, (time.monotonic() - t0) / (repeats + 1))
        bench.log(f"{row.name} [{row.precision}]: {row.images_per_s:.3f} images/s")
    bench.rows.append(row)


def compile_blocks(model: UNet, mode: str, scope: str = "label-free") -> UNet:
    """A copy with its blocks compiled one by one: the label-free ones (encoder ResBlocks, attention, output head,
    time MLP), or with scope "all" also the decoder's SPADEResBlocks.

    Per block, not the whole U-Net: `LabelContext` branches on tensor values (null rows) and keys caches by module,
    so a whole-model compile breaks its graph at every SPADE and recompiles past dynamo's limit. The SPADEResBlocks
    break the same way (138 graphs for the 256 px ADE20K network with scope "all", minutes of compilation).
    """
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):  # one entry per distinct block shape
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)
    kinds = (ResBlock, AttentionBlock, SPADEResBlock) if scope == "all" else (ResBlock, AttentionBlock)
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, kinds) or m is model.out or m is model.time_embed:
            m.compile(mode=None if mode == "default" else mode)
    return model


def cpu_gpu_check(cpu_model: UNet, pipe: Pipeline, labels: torch.Tensor) -> str:
    """fp32, TF32 off: one guided forward and a 3-step generate of the same model and labels (1, H, W) on CPU and GPU."""
    if pipe.device.type != "cuda":
        return "skipped (no GPU: the benchmark device is the CPU)"
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        cpu = Pipeline(cpu_model, pipe.card, "cpu")
        outs = []
        for p in (cpu, pipe):
            g = torch.Generator().manual_seed(1)
            y = p.encode(labels[:1])
            x = torch.randn(1, 3, *y.shape[-2:], generator=g).to(p.device)
            y2 = torch.cat([y, torch.zeros_like(y)])
            ctx = p.model.label_context(y2, torch.arange(2, device=p.device) >= 1)
            with torch.no_grad():
                out = p.model(x, torch.full((1,), 500, device=p.device), ctx, labels_per_image=2).cpu()
            last: list[torch.Tensor] = []
            img = p.generate(labels[:1], steps=3, precision="fp32", seed=1,
                             callback=lambda info: last.append(info.x0.float().cpu()))
            outs.append((out, last[-1], img))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    (fc, xc, ic), (fg, xg, ig) = outs
    d_fwd = (fc - fg).abs().max().item()
    scale = max(1.0, fc.abs().max().item())
    d_x0 = (xc - xg).abs().max().item()
    d_img = int(np.abs(ic.astype(int) - ig.astype(int)).max())
    ok = d_fwd <= FORWARD_TOL * scale and d_x0 <= GENERATE_TOL
    return (f"{'ok' if ok else 'MISMATCH'}: guided forward max|diff| {d_fwd:.2e} (max|out| {scale:.2f}, "
            f"tol {FORWARD_TOL:g} x max(1, max|out|)); 3-step generate max|diff| of x̂_0 {d_x0:.2e} "
            f"(tol {GENERATE_TOL:g}), of the uint8 image {d_img} levels")


# ----- report -----

def table(rows: list[Row], steps: int, peak: float | None) -> str:
    base = next((r.images_per_s for r in rows if r.name.startswith("reference") and r.images_per_s), None)
    head = ("variant", "precision", "images/s", f"s/image ({steps} steps)", "vs reference", "TFLOP/image", "% of peak",
            "note")
    lines = []
    for r in rows:
        ips = r.images_per_s
        achieved = ips * r.tflop_per_image if ips and r.tflop_per_image else None
        lines.append((r.name, r.precision, f"{ips:.3f}" if ips else "-", f"{1 / ips:.3f}" if ips else "-",
                      f"{ips / base:.2f}x" if ips and base else "-",
                      f"{r.tflop_per_image:.3g}" if r.tflop_per_image else "-",
                      f"{100 * achieved / peak:.1f}%" if achieved and peak else ("unknown" if ips else "-"), r.note))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i in (0, 1, 7) else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines])


def summary(rows: list[Row], peak: float | None, check: str) -> str:
    verdict = check.split(":")[0] if check.startswith(("ok", "MISMATCH")) else check
    ref = next((r for r in rows if r.name.startswith("reference") and r.images_per_s), None)
    ours = [r for r in rows if r.name.startswith("ours") and r.images_per_s]
    if not ours:
        return "summary: no variant of ours finished"
    best = max(ours, key=lambda r: r.images_per_s)
    speedup = f", {best.images_per_s / ref.images_per_s:.2f}x the reference [{ref.precision}]" if ref else ""
    frac = (f", {100 * best.images_per_s * best.tflop_per_image / peak:.1f}% of {peak:.0f} TFLOPS peak"
            if peak and best.tflop_per_image else ", peak unknown")
    return (f"summary: best {best.name} [{best.precision}] {best.images_per_s:.3f} images/s "
            f"({1 / best.images_per_s:.3f} s/image){speedup}{frac}; CPU vs GPU fp32 check: {verdict}")


# ----- main -----

def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, torch.device, list[str]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="TINY_UNET at 32 px, 4 steps, batch 2 (CPU smoke run)")
    p.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda when available (cpu with --tiny)")
    p.add_argument("--batch", type=int, help="images per generate call (default 8; --tiny 2)")
    p.add_argument("--steps", type=int, help="sampling steps (default 25, the reference's ddim25; --tiny 4)")
    p.add_argument("--precision", help="autocast precisions of ours, comma-separated (default bf16,fp16 on a GPU, "
                   "fp32,bf16 on the CPU)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per row after one warm-up (median)")
    p.add_argument("--compile", default=None, help="torch.compile mode of the compiled row: default, "
                   "max-autotune-no-cudagraphs, ... or off (default: default; off with --tiny)")
    p.add_argument("--compile-scope", choices=("label-free", "all"), default="label-free",
                   help="blocks compiled: label-free (encoder, attention, head) or all (also the SPADE decoder blocks; "
                   "minutes of compilation)")
    p.add_argument("--budget", type=float, default=240.0, help="seconds for the whole run; rows that no longer fit "
                   "are skipped with a message")
    p.add_argument("--check-size", type=int, default=128, help="label size of the CPU-vs-GPU check (the network is "
                   "fully convolutional; 128 keeps its CPU side to seconds, 256 is the training size)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 with --tiny, whose convs are "
                   "too small to share)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device here")
    device = torch.device(args.device or ("cpu" if args.tiny or not torch.cuda.is_available() else "cuda"))
    if device.type == "cpu" and not args.tiny:
        p.error("the 256 px ADE20K network (~660 M parameters) needs a CUDA device (none is in use here); "
                "run with --tiny for the CPU smoke run")
    args.batch = args.batch or (2 if args.tiny else 8)
    args.steps = args.steps or (4 if args.tiny else 25)
    args.compile = args.compile or ("off" if args.tiny else "default")
    default = "bf16,fp16" if device.type == "cuda" else "fp32,bf16"
    precisions = [s.strip() for s in (args.precision or default).split(",") if s.strip()]
    for prec in precisions:
        try:
            autocast_dtype(prec, device)
        except ValueError as e:
            p.error(f"--precision {prec}: {e}")
    if args.batch < 1 or args.repeats < 1:
        p.error("--batch and --repeats must be >= 1")
    if args.check_size < 32 or args.check_size % 32:
        p.error(f"--check-size must be a multiple of 32 (the U-Net downsamples 5 times), got {args.check_size}")
    return args, device, precisions


def main(argv: list[str] | None = None) -> int:
    args, device, precisions = parse_args(argv)
    if args.threads or args.tiny:
        torch.set_num_threads(args.threads or 1)
    bench = Bench(args.budget)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest convs, for every row
    model, card = build(args.tiny)
    cpu_model = copy.deepcopy(model) if device.type == "cuda" else None  # for the CPU-vs-GPU check
    pipe = Pipeline(model, card, device)
    labels = make_labels(card, args.batch)
    peak, device_name = peak_tflops(device)
    ref_dtype = torch.float16 if device.type == "cuda" else None  # `--use_fp16 True` needs a GPU
    ref_prec = "fp16" if ref_dtype is not None else "fp32"
    ref = reference_model(pipe.model, ref_dtype)
    r = pipe.resolve(steps=args.steps)
    size = card.unet.image_size
    print(f"device {device_name} ({device.type}), torch {torch.__version__}, dense bf16/fp16 peak "
          f"{f'{peak:.0f} TFLOPS' if peak else 'unknown'}")
    print(f"model {card.name} {size} px, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
          f"random weights; batch {args.batch}, {r.steps} steps {r.sampler.value} on {r.spacing.value} spacing, "
          f"guidance {r.guidance}, extrapolation {r.extrapolation}, dynamic threshold {r.dynamic_threshold}; "
          f"budget {args.budget:.0f} s", flush=True)

    first = autocast_dtype(precisions[0], device)
    flops = bench.guarded("FLOP count", lambda: step_flops(pipe, labels, ref, ref_dtype, first))
    ref_tflop, ours_tflop = ((f * r.steps / 1e12 for f in flops) if flops else (None, None))
    if flops:
        bench.log(f"executed FLOPs per image per step: reference (2 forwards) {flops[0] / 1e9:.1f} G, ours (1 guided "
                  f"forward, shared encoder, cached null SPADE) {flops[1] / 1e9:.1f} G")
    kernel = bench.guarded("attention kernel", lambda: attention_kernel(pipe.model, size, first, device))
    bench.log(f"attention: F.scaled_dot_product_attention in scdm/layers.py AttentionBlock; aten kernel at "
              f"{size // min(card.unet.attention_ds)} px [{precisions[0]}]: {kernel}")
    syncs = bench.guarded("sync count", lambda: guided_step_syncs(pipe, labels, first))
    if syncs is not None:
        bench.log(f"host-device synchronisations per guided step of ours: {syncs[0]}, in its U-Net forward: {syncs[1]}")

    time_row(bench, Row("reference (2 forwards/step, per-block SPADE)", ref_prec, tflop_per_image=ref_tflop,
                        note="" if ref_dtype else "fp16 (--use_fp16 True) needs a GPU"),
             lambda: reference_generate(ref, pipe, labels, args.steps, ref_dtype), args.batch, args.repeats)
    ref = None  # free the fp16 copy
    for prec in precisions:
        time_row(bench, Row("ours (1 batched guidance forward)", prec, tflop_per_image=ours_tflop),
                 lambda: pipe.generate(labels, steps=args.steps, precision=prec), args.batch, args.repeats)
    check = "skipped (no GPU: the benchmark device is the CPU)"
    if device.type == "cuda":
        check_labels = labels[:1, :args.check_size, :args.check_size]
        check = bench.guarded("CPU vs GPU check", lambda: cpu_gpu_check(cpu_model, pipe, check_labels),
                              need=10.0) or "not finished, see log"
    bench.log(f"CPU vs GPU fp32 check{f' at {args.check_size} px' if device.type == 'cuda' else ''}: {check}")
    cpu_model = None

    pipe.model.to(memory_format=torch.channels_last)
    time_row(bench, Row("ours + channels_last", precisions[0], tflop_per_image=ours_tflop),
             lambda: pipe.generate(labels, steps=args.steps, precision=precisions[0]), args.batch, args.repeats)
    pipe.model.to(memory_format=torch.contiguous_format)

    if args.compile == "off":
        bench.log("ours + torch.compile: skipped (--compile off" + (", the default with --tiny)" if args.tiny else ")"))
    else:
        row = Row(f"ours + torch.compile ({args.compile_scope} blocks, {args.compile})", precisions[0],
                  tflop_per_image=ours_tflop)

        def compiled():
            cpipe = Pipeline(compile_blocks(pipe.model, args.compile, args.compile_scope), card, device)
            run = lambda: cpipe.generate(labels, steps=args.steps, precision=precisions[0])  # noqa: E731
            t0 = time.monotonic()
            run()  # compiles
            first_s = time.monotonic() - t0
            seconds = time_call(run, args.repeats)
            row.note = f"compile ~{first_s - seconds:.0f} s (first run {first_s:.0f} s)"
            return seconds

        seconds = bench.guarded(f"{row.name} [{row.precision}]", compiled,
                                need=bench.slowest_run * (args.repeats + 2) + 30)
        if seconds:
            row.images_per_s = args.batch / seconds
            bench.log(f"{row.name} [{row.precision}]: {row.images_per_s:.3f} images/s ({row.note})")
        else:
            row.note = bench.last_reason.split(":")[0] + ", see log"
        bench.rows.append(row)
    reason = ("needs CUDA" if device.type != "cuda" else
              f"the guided step synchronises with the host ({syncs[0] if syncs else 'several'} times, "
              f"{syncs[1] if syncs else 'several'} in the U-Net forward: LabelContext's bool(null.any()), "
              "null.all() per SPADE, y[~null]; the per-image CPU-drawn noise and labels), which CUDA graph "
              "capture forbids")
    bench.log(f"ours + CUDA graphs: skipped ({reason})")

    print()
    print(table(bench.rows, r.steps, peak))
    print(summary(bench.rows, peak, check), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
