"""HouseX model: batched patches vs the authors' per-patch loop, and gradient-checkpointing memory.

Rows, all measured in this run:
- ``forward``: resnet18 backbone, 224 mels, 7.5 s clips (646 frames -> 27 patches), batch 4, CPU,
  eval/no_grad: ``HouseXForAudioClassification`` (one backbone call on 108 patches) vs
  ``bench.reference_model.loop_forward`` (one call per patch).  Target >= 1.5x, logits equal.
- ``train step peak memory``: forward + backward + Adam step with and without
  ``gradient_checkpointing_enable()`` (the ResNet stem, each backbone block and each encoder layer
  recomputed in the backward pass), resnet18 at batch 4 on the ``cpu-small`` preset (64 mels, 19
  patches of 64x64 per clip) and at paper size (224 mels, 27 patches of 224x224), each in a fresh
  subprocess, measured on steps after a warm-up step (gradients and Adam state already allocated).
  On CPU two figures: the allocator's peak (``torch.profiler`` with ``profile_memory``: the most
  bytes of tensors allocated during the step alive at once, the figure the target is judged on)
  and the peak RSS growth during the step (VmHWM reset through /proc/self/clear_refs).  Plain glibc
  RSS is no fair measure here: freed buffers under its dynamic mmap threshold stay resident, so the
  step reuses pages the warm-up step left and its RSS growth hides most of its own peak (cpu-small:
  plain 91 MiB RSS growth for a 150 MiB tensor peak); the subprocess therefore fixes
  ``MALLOC_MMAP_THRESHOLD_`` (64 KiB), which returns every freed large buffer to the OS, and the RSS
  growth then follows the tensor peak.  On CUDA ``torch.cuda.max_memory_allocated``.  Target: with
  <= 60% of without, and the same loss (checkpointing must not change the math: BatchNorm sees the
  same batch and updates its running statistics once).  With checkpointing the CPU peak is the
  backward of the recomputed stem: conv1's output (bn1's saved input), the gradient of bn1's output
  and the two buffers of conv1's output size that torch's CPU BatchNorm backward allocates, i.e.
  about 4x the stem activation plus the patches, the floor for a ResNet whose BatchNorm must see
  the whole batch.
- with CUDA: the same on the GPU plus the paper's config (ResNet152, d_model 768, 6 heads) step
  time and peak memory at batch 4; without CUDA this is reported as not run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench.reference_model import loop_forward
from housex.modeling import HouseXConfig, HouseXForAudioClassification

FRAMES = 646  # 7.5 s at 44.1 kHz, hop 512
ROOT = Path(__file__).resolve().parent.parent

STEP_SCRIPT = r"""
import json, sys, time, torch
from housex.modeling import HouseXConfig, HouseXForAudioClassification
preset, backbone, batch, ckpt, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
torch.manual_seed(0)
model = HouseXForAudioClassification(HouseXConfig.from_preset(preset, backbone=backbone)).to(device).train()
if ckpt:
    model.gradient_checkpointing_enable()
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
x = torch.rand(batch, 3, model.config.patch_size, 646, device=device)
y = torch.softmax(torch.rand(batch, 8, device=device), -1)
losses = []
def step():
    out = model(x, labels=y)
    out.loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=False)  # keep gradients allocated: the measured step starts from steady state
    losses.append(out.loss.item())
if device == "cuda":
    step(); torch.cuda.synchronize()  # warm-up (cuDNN autotune), then measure
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    for _ in range(5):
        step()
    torch.cuda.synchronize(); seconds = (time.perf_counter() - t0) / 5  # mean of 5 steps
    peak, growth = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_allocated() - before
else:
    def status_kib(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    step()  # warm-up: allocates gradients and Adam state, so the measured peak is the step's own
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM (peak RSS) to the current RSS
    before = status_kib("VmRSS")
    t0 = time.perf_counter(); step(); seconds = time.perf_counter() - t0
    peak = status_kib("VmHWM") * 1024
    growth = peak - before * 1024
    # the allocator's peak: the profiler counts the bytes of every tensor allocated while it runs
    # ("Total Allocated" after each allocation and free), so its maximum is the step's own peak
    import os, tempfile
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    fd, path = tempfile.mkstemp(suffix=".json"); os.close(fd)
    prof.export_chrome_trace(path)
    with open(path) as f:
        events = json.load(f)["traceEvents"]
    os.unlink(path)
    alloc = max(e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]")
print("RESULT", json.dumps({"seconds": seconds, "peak": peak, "growth": growth,
                            "alloc": alloc if device == "cpu" else growth, "losses": losses}))
"""


def run_step(preset: str, backbone: str, batch: int, checkpointing: bool, device: str) -> dict:
    # every freed buffer of 64 KiB or more goes back to the OS: the RSS peak follows the tensors (docstring)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_MMAP_THRESHOLD_": "65536"}
    proc = subprocess.run(
        [sys.executable, "-c", STEP_SCRIPT, preset, backbone, str(batch), "1" if checkpointing else "0", device],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800,
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"training-step subprocess failed:\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1][7:])


def same_loss(plain: list[float], ckpt: list[float]) -> str:
    """'same loss' when every step's loss agrees to float rounding (the weights follow the same path)."""
    diff = max(abs(a - b) for a, b in zip(plain, ckpt, strict=True))
    return "same loss" if diff <= 1e-5 * max(1.0, abs(plain[0])) else f"LOSS DIFFERS by {diff:.2e}"


def forward_rows(device: str, repeats: int) -> list[tuple]:
    """Per-patch loop vs one backbone call on all 108 patches, and vs chunks of 8 patches.

    On a CPU the backbone runs at about the same FLOP rate whichever way the patches come (the
    loop's Python overhead is a few percent of the compute), so the gain of batching shows on a
    GPU; chunks of 8 keep activations in cache and are reported beside one call.
    """
    torch.manual_seed(0)
    model = HouseXForAudioClassification(HouseXConfig.from_preset("paper", backbone="resnet18")).to(device).eval()
    x = torch.rand(4, 3, 224, FRAMES, device=device)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def timed(fn):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        return time.perf_counter() - t0, out

    rows = []
    with torch.no_grad():
        model(x[:1])  # warm-up
        best = {"loop": float("inf"), None: float("inf"), 8: float("inf")}
        outs = {}
        for _ in range(repeats):
            t, outs["loop"] = timed(lambda: loop_forward(model, x))
            best["loop"] = min(best["loop"], t)
            for chunk in (None, 8):
                model.config.backbone_chunk_size = chunk
                t, outs[chunk] = timed(lambda: model(x).logits)
                best[chunk] = min(best[chunk], t)
        model.config.backbone_chunk_size = None
    for chunk in (None, 8):
        diff = float((outs[chunk] - outs["loop"]).abs().max())
        what = "one call" if chunk is None else f"chunks of {chunk}"
        rows.append((f"forward, batch 4 x 27 patches, {what} ({device})", best["loop"], best[chunk],
                     best["loop"] / best[chunk], diff))
    return rows


def main() -> None:
    print(f"resnet18, 224 mels, 7.5 s ({FRAMES} frames, 27 patches of 224x224, hop 16), torch threads {torch.get_num_threads()}")
    print(f"{'forward':<52} {'loop s':>8} {'batched s':>10} {'speed-up':>9} {'max |dlogit|':>13}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for name, t_loop, t_batched, ratio, diff in forward_rows(device, 1 if device == "cpu" else 5):
            print(f"{name:<52} {t_loop:>8.2f} {t_batched:>10.2f} {ratio:>8.2f}x {diff:>13.2e}")
    print("target: batched >= 1.5x faster than the per-patch loop, logits equal (< 1e-4)")

    print()
    memory_runs = [("cpu", "cpu-small"), ("cpu", "paper")] + ([("cuda", "paper")] if torch.cuda.is_available() else [])
    print(f"{'train step (fwd+bwd+Adam), resnet18, batch 4':<46} {'plain s':>8} {'ckpt s':>8} "
          f"{'plain MiB':>10} {'ckpt MiB':>9} {'ckpt/plain':>10}  loss")
    for device, preset in memory_runs:
        plain = run_step(preset, "resnet18", 4, False, device)
        ckpt = run_step(preset, "resnet18", 4, True, device)
        size = "64 mels" if preset == "cpu-small" else "224 mels"
        rows = [("tensor peak", "alloc"), ("RSS growth", "growth")] if device == "cpu" else [("peak alloc", "peak")]
        for what, key in rows:
            print(
                f"{f'{preset} ({size}), {what} ({device})':<46} {plain['seconds']:>8.2f} {ckpt['seconds']:>8.2f} "
                f"{plain[key] / 2**20:>10.0f} {ckpt[key] / 2**20:>9.0f} {ckpt[key] / plain[key]:>9.0%}  "
                f"{same_loss(plain['losses'], ckpt['losses'])}"
            )
    print("target: peak memory (tensor peak on CPU) with gradient checkpointing <= 60% of without, same loss "
          "(same weights, batch, seed)")

    print()
    if torch.cuda.is_available():
        paper = run_step("paper", "resnet152", 4, False, "cuda")
        paper_ckpt = run_step("paper", "resnet152", 4, True, "cuda")
        print(f"paper config (ResNet152, d_model 768, 1 layer, 6 heads), batch 4, {torch.cuda.get_device_name()}:")
        print(f"  step {paper['seconds']:.2f} s, peak {paper['peak'] / 2**30:.2f} GiB; "
              f"with gradient checkpointing {paper_ckpt['seconds']:.2f} s, {paper_ckpt['peak'] / 2**30:.2f} GiB")
    else:
        print("no GPU available: GPU rows and the paper's ResNet152 step (time, peak memory at batch 4) not run")


if __name__ == "__main__":
    main()
