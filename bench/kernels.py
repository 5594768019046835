"""Which oneDNN implementation runs each convolution pass of the cnn's training step, on this CPU.

    python -m bench.kernels                          # the cnn of params.yaml, precision auto
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python -m bench.kernels   # as an AVX2-only CPU

Runs a few training steps in a child process with ONEDNN_VERBOSE=1 and tabulates oneDNN's log:
per pass (forward, backward-data, backward-weights), the implementations it chose and their share
of oneDNN's time, weight reorders included. Good: brgemm or jit kernels with amx, avx512_core_bf16
or avx2 in the name; suspect: ref or gemm, which are the slow fallbacks.
"""

import argparse
import collections
import os
import subprocess
import sys

STEPS = 4


def child(model_name: str, batch_size: int, precision: str | None, conv_bf16: bool) -> None:
    import torch
    import yaml

    from bench import log
    from fmnist.model import inference, models

    recipe = log.variant(yaml.safe_load(open("params.yaml")), model_name, {}).recipe
    runtime = inference.Runtime.create("cpu", precision or recipe.precision, recipe.arch)
    if conv_bf16:  # an fp32 model whose convolutions oneDNN computes in bf16
        torch.backends.mkldnn.conv.fp32_precision = "bf16"
    net = runtime.place(models.build(recipe.arch, recipe.options))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    x = runtime.input(torch.rand(batch_size, 1, 28, 28))
    y = torch.randint(0, 10, (batch_size,))
    print(f"dtype {runtime.dtype}, capability {torch.backends.cpu.get_cpu_capability()}", file=sys.stderr)
    for _ in range(STEPS):
        with inference.autocast(runtime.device, runtime.dtype):
            loss = torch.nn.functional.cross_entropy(net(x).float(), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def table(log_lines: list[str]) -> list[tuple[str, str, int, float]]:
    """(primitive and pass, implementation, calls, milliseconds) from ONEDNN_VERBOSE lines,
    the first step left out: its calls also create the primitives."""
    executed = []
    for line in log_lines:
        fields = line.split(",")
        if len(fields) < 8 or "exec" not in fields or fields[0] != "onednn_verbose":
            continue
        at = fields.index("exec") + 2  # exec, cpu, then the primitive kind
        kind, impl, pass_ = fields[at], fields[at + 1], fields[at + 2]
        if kind in ("convolution", "reorder"):
            executed.append(((f"{kind} {pass_}" if kind == "convolution" else "reorder", impl), float(fields[-1])))
    calls, seconds = collections.Counter(), collections.Counter()
    for key, milliseconds in executed[len(executed) // STEPS :]:
        calls[key] += 1
        seconds[key] += milliseconds
    return [(key[0], key[1], calls[key], seconds[key]) for key in sorted(calls)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="cnn")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--precision", choices=("fp32", "bf16"), help="instead of the recipe's")
    parser.add_argument("--conv-bf16", action="store_true", help="fp32 model, bf16 inside oneDNN's convolutions")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.model, args.batch_size, args.precision, args.conv_bf16)
        return
    run = subprocess.run(
        [sys.executable, "-m", "bench.kernels", *sys.argv[1:], "--child"],
        env=os.environ | {"ONEDNN_VERBOSE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    print(run.stderr.strip().splitlines()[-1])
    rows = table(run.stdout.splitlines())
    print("| pass | implementation | calls | ms a step | share |\n|---|---|---|---|---|")
    for pass_, impl, count, milliseconds in rows:
        share = milliseconds / sum(row[3] for row in rows)
        print(f"| {pass_} | `{impl}` | {count} | {milliseconds / (STEPS - 1):.1f} | {share:.0%} |")


if __name__ == "__main__":
    main()
