"""How fast is a per-task convolution (every task its own weights, as in MAML's adapted parameters)
in each formulation, forward + backward, at the shapes of the perf settings?

    python -m benchmarks.perf.grouped_conv_bench [--device cuda] [--out FILE]

Formulations: `grouped` (what vmap over F.conv2d does: one convolution with groups = tasks, NCHW),
`grouped-nhwc` (the same in channels-last memory), `loop` (one ordinary convolution per task).
Median milliseconds over --repeats (20) after --warmup (3), device synchronized; full float32.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

# (name, tasks, images per task, channels in, channels out, size, stride): the second-layer shapes of
# perf's Omniglot (32 tasks, strided Conv-4 64) and mini-ImageNet (4 tasks, Conv-4 32) settings.
SHAPES = [
    ("omniglot-layer2", 32, 75, 64, 64, 14, 2),
    ("omniglot-layer1", 32, 75, 1, 64, 28, 2),
    ("mini-imagenet-layer2", 4, 75, 32, 32, 42, 1),
    ("mini-imagenet-layer1", 4, 75, 3, 32, 84, 1),
]


def grouped(x: torch.Tensor, w: torch.Tensor, stride: int, channels_last: bool) -> torch.Tensor:
    t, n, c, h, wd = x.shape
    merged = x.permute(1, 0, 2, 3, 4).reshape(n, t * c, h, wd)
    weight = w.reshape(-1, c, 3, 3)
    if channels_last:
        merged = merged.contiguous(memory_format=torch.channels_last)
        weight = weight.contiguous(memory_format=torch.channels_last)
    return F.conv2d(merged, weight, stride=stride, padding=1, groups=t)


def per_task(x: torch.Tensor, w: torch.Tensor, stride: int) -> torch.Tensor:
    return torch.stack([F.conv2d(x[i], w[i], stride=stride, padding=1) for i in range(x.shape[0])])


def time_ms(fn, device: torch.device, repeats: int = 20, warmup: int = 3) -> float:
    samples = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def measure_shape(shape: tuple, device: torch.device, repeats: int, warmup: int) -> str:
    """One line: each formulation's forward + backward time and its largest difference from 'loop'."""
    name, t, n, c, o, size, stride = shape
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(t, n, c, size, size, generator=g).to(device).requires_grad_(True)
    w = torch.randn(t, o, c, 3, 3, generator=g).to(device).requires_grad_(True)
    forms = {
        "grouped": lambda: grouped(x, w, stride, False).reshape(n, t, o, *_out_size(size, stride)),
        "grouped-nhwc": lambda: grouped(x, w, stride, True).reshape(n, t, o, *_out_size(size, stride)),
        "loop": lambda: per_task(x, w, stride).permute(1, 0, 2, 3, 4),
    }
    reference = forms["loop"]()
    row = [name]
    for form, fn in forms.items():
        err = float((fn() - reference).detach().abs().max())

        def step(fn=fn):
            torch.autograd.grad(fn().square().sum(), (x, w))

        row.append(f"{form} {time_ms(step, device, repeats, warmup):.3f} ms (max diff {err:.1e})")
    return " | ".join(row)


def _out_size(size: int, stride: int) -> tuple[int, int]:
    out = (size - 1) // stride + 1
    return out, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    lines = [f"device {device} ({name}), torch {torch.__version__}"]
    for shape in SHAPES:
        lines.append(measure_shape(shape, device, args.repeats, args.warmup))
        print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
