"""oneDNN's channels_last 1×1 convolution weight gradient, shape by shape, beside fairlatent's guard.

Each shape runs three forward/backward passes of one ``nn.Conv2d`` with a 1×1 kernel in a fresh process
(a heap corruption kills the process), in channels_last and in NCHW, and compares the weight gradient with
torch's non-oneDNN convolution (relative to its largest entry, within 1e-5). A heap corruption does not
always kill the process at once, so a shape may pass one run and crash the next. The last column is what
:func:`fairlatent.train.memory_format.channels_last_trainable` decides for such a convolution on CPU. The
script exits 1 when a shape crashes or gives a wrong gradient where the guard allows channels_last, so it
checks the guard on this CPU.

Run: python benchmarks/onednn_conv1x1_crash.py
"""

import subprocess
import sys

import torch
from torch import nn

from fairlatent.train.memory_format import channels_last_trainable

CHILD = """
import torch, torch.nn as nn
torch.set_num_threads(1)
torch.manual_seed(0)
cin, cout, stride, cl = {cin}, {cout}, {stride}, {cl}
fmt = torch.channels_last if cl else torch.contiguous_format
conv = nn.Conv2d(cin, cout, 1, stride=stride, bias=False).to(memory_format=fmt)
x = torch.randn(64, cin, 32, 32).contiguous(memory_format=fmt).requires_grad_()
for _ in range(3):
    conv.weight.grad = None
    conv(x).sum().backward()
with torch.backends.mkldnn.flags(enabled=False):
    ref = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
    ref.weight.data = conv.weight.data.contiguous().clone()
    ref(x.detach().contiguous()).sum().backward()
print(float((conv.weight.grad - ref.weight.grad).abs().max() / ref.weight.grad.abs().max()))
"""


def run(cin: int, cout: int, stride: int, cl: bool) -> str:
    r = subprocess.run([sys.executable, "-c", CHILD.format(cin=cin, cout=cout, stride=stride, cl=int(cl))],
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode:
        return f"crash (exit {r.returncode})"
    rel = float(r.stdout.strip())  # max |difference| / max |reference gradient|
    return "ok" if rel < 1e-5 else f"wrong gradient ({rel:.2g})"


def main() -> int:
    print(f"torch {torch.__version__}, ATen CPU capability: {torch.backends.cpu.get_cpu_capability()}")
    print(f"{'in':>3} {'out':>4} {'stride':>6}  {'channels_last':<18} {'NCHW':<18} guard")
    failures = 0
    for cin in (1, 3, 4, 7, 8, 12, 16):
        for stride in (1, 2):
            model = nn.Sequential(nn.Conv2d(cin, 2 * cin, 1, stride=stride, bias=False))
            allowed = channels_last_trainable(model, "cpu")
            nhwc, nchw = run(cin, 2 * cin, stride, True), run(cin, 2 * cin, stride, False)
            failures += (allowed and nhwc != "ok") + (nchw != "ok")
            print(f"{cin:>3} {2 * cin:>4} {stride:>6}  {nhwc:<18} {nchw:<18} "
                  f"{'channels_last' if allowed else 'NCHW'}", flush=True)  # fmt: skip
    print("guard holds on this CPU" if not failures else f"{failures} shape(s) fail where the guard trains them")
    return int(failures > 0)


if __name__ == "__main__":
    sys.exit(main())
