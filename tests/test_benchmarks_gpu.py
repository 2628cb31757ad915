"""The prepared GPU benchmark (`python -m benchmarks.gpu`) runs end to end with `--tiny` on a CPU, rejects what a
CPU cannot run with a message, and the attention layout it checks keeps SDPA's fused kernels usable."""
import math
import re
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from scdm.layers import AttentionBlock

ROOT = Path(__file__).resolve().parents[1]


def run_gpu_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_tiny_run_prints_every_row_and_a_summary():
    r = run_gpu_bench("--tiny", "--device", "cpu", "--repeats", "1")  # one thread: the tiny convs are too small to share
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    out = r.stdout
    rows = {(m.group(1).strip(), m.group(2)): float(m.group(3)) for m in re.finditer(
        r"^((?:reference|ours)[^\n]*?)\s{2,}(fp32|bf16)\s+(\d+\.\d+)\s", out, re.M)}
    assert set(rows) == {("reference (2 forwards/step, per-block SPADE)", "fp32"),
                         ("ours (1 batched guidance forward)", "fp32"), ("ours (1 batched guidance forward)", "bf16"),
                         ("ours + channels_last", "fp32")}, out
    assert all(v > 0 for v in rows.values())
    assert "images/s" in out and "% of peak" in out
    assert "CPU vs GPU fp32 check: skipped (no GPU" in out
    assert "ours + torch.compile: skipped" in out and "ours + CUDA graphs: skipped (needs CUDA)" in out
    assert "aten kernel at 16 px [fp32]: aten._scaled_dot_product_flash_attention_for_cpu" in out  # not the math path
    assert re.search(r"^summary: best ours .* images/s .*x the reference", out, re.M), out


def test_fp16_without_a_gpu_is_a_message_not_a_traceback():
    r = run_gpu_bench("--tiny", "--device", "cpu", "--precision", "bf16,fp16")
    assert r.returncode == 2
    assert "precision 'fp16' needs a GPU" in r.stderr and "Traceback" not in r.stderr


def test_full_preset_on_the_cpu_points_to_tiny():
    r = run_gpu_bench("--device", "cpu")
    assert r.returncode == 2
    assert "--tiny" in r.stderr and "Traceback" not in r.stderr


def legacy_attention(block: AttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """guided-diffusion's QKVAttentionLegacy written out: per head [q, k, v] channel blocks, scale ch^-1/4 each."""
    b, c, *spatial = x.shape
    flat = x.reshape(b, c, -1)
    ch = c // block.num_heads
    q, k, v = block.qkv(block.norm(flat)).reshape(b * block.num_heads, 3 * ch, -1).split(ch, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    w = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale), dim=-1)
    a = torch.einsum("bts,bcs->bct", w, v).reshape(b, c, -1)
    return (flat + block.proj_out(a)).reshape(b, c, *spatial)


def strided_sdpa_attention(block: AttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """The previous AttentionBlock.forward: SDPA on q, k, v with stride T in the last dim (math kernel only)."""
    b, c, *spatial = x.shape
    flat = x.reshape(b, c, -1)
    qkv = block.qkv(block.norm(flat)).reshape(b, block.num_heads, 3 * c // block.num_heads, -1).transpose(-1, -2)
    q, k, v = qkv.chunk(3, dim=-1)
    h = F.scaled_dot_product_attention(q, k, v).transpose(-1, -2).reshape(b, c, -1)
    return (flat + block.proj_out(h)).reshape(b, c, *spatial)


def test_attention_uses_a_fused_sdpa_kernel_and_matches_the_old_path():
    torch.manual_seed(0)
    block = AttentionBlock(64, head_channels=16, groups=8).eval()
    torch.nn.init.normal_(block.proj_out.weight, std=0.1)  # zero-initialised: the block would be the identity
    x = torch.randn(3, 64, 8, 12)
    with torch.no_grad():
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):  # raises if q, k, v do not suit the fused kernel
            out = block(x)
        expected = legacy_attention(block, x)
        old = strided_sdpa_attention(block, x)
    assert (out - x).abs().max() > 0.1
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, old, atol=1e-5, rtol=1e-5)
