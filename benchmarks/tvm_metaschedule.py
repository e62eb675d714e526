"""Apache TVM MetaSchedule on a test model, the peer of `kiln tune` (benchmarks/tuning.py).

    pip install apache-tvm   # (a venv of its own is fine: it needs onnx and onnxruntime too)
    python -m kiln.benchmarks.tvm_metaschedule --model resnet18 --trials 200 --threads 1

The model goes through TVM's ONNX frontend (folded by ONNX Runtime's basic optimizations where
the importer needs fixed shapes: benchmarks/models.py), then Relax's static-shape tuning
pipeline with MetaSchedule for `--trials` trials (at most `--per-task` per task), is built for
this CPU, checked against ONNX Runtime and timed alternately with it and with Kiln's default
artifact. It prints the tuning time, the trial count and the latencies.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from .. import zoo
from ..driver import compile_detailed
from ..runtime import load
from .models import (_folded_for_tvm, check_outputs, model_inputs, ort_runner,
                     time_alternately)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln.benchmarks.tvm_metaschedule",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", choices=zoo.MODELS)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--per-task", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    try:
        import tvm
        from tvm import relax
        from tvm.relax.frontend.onnx import from_onnx
    except ImportError:
        print("apache-tvm does not import here: pip install apache-tvm", file=sys.stderr)
        return 2
    model = zoo.load(args.model)
    feed, dims = model_inputs(model)
    shapes = {k: v.shape for k, v in feed.items()}
    try:
        mod = from_onnx(model, shape_dict=shapes)
    except Exception:   # noqa: BLE001  (the importer raises anything; retry folded)
        mod = from_onnx(_folded_for_tvm(model, feed), shape_dict=shapes)
    cpu = getattr(tvm.target.codegen, "llvm_get_system_cpu", lambda: "generic")()
    target = tvm.target.Target({"kind": "llvm", "mcpu": cpu, "num-cores": args.threads})
    with tempfile.TemporaryDirectory(prefix="kiln-tvm-ms-") as scratch:
        began = time.perf_counter()
        with target:
            tuned = relax.pipeline.static_shape_tuning_pipeline(
                total_trials=args.trials, target=target, work_dir=str(Path(scratch) / "logs"),
                max_trials_per_task=args.per_task)(mod)
        tuning_seconds = time.perf_counter() - began
        executable = tvm.compile(tuned, target=target)
        vm = relax.VirtualMachine(executable, tvm.cpu())
        inputs = [tvm.runtime.tensor(feed[i.name], tvm.cpu()) for i in model.graph.input
                  if i.name in feed]

        def tvm_run(_feed):
            out = vm["main"](*inputs)
            return {"y": (out[0] if isinstance(out, (list, tuple)) else out).numpy()}

        library = Path(scratch) / "kiln.so"
        compile_detailed(model, "x86_64", library, dims, threads_max=args.threads)
        with load(library, threads=args.threads) as session:
            ort = ort_runner(model, args.threads)
            check_outputs(f"{args.model} tvm", tvm_run, ort, feed)
            timings = time_alternately({"tvm": tvm_run, "kiln": session.run, "ort": ort}, feed,
                                       warmup=3, runs=args.runs, budget_s=20)
    medians = {k: t.median for k, t in timings.items()}
    print(f"TVM MetaSchedule, {args.model}, {args.threads} thread(s): {args.trials} trials "
          f"(at most {args.per_task} a task) in {tuning_seconds:.0f} s; median ms: "
          f"TVM {medians['tvm']:.2f}, Kiln default {medians['kiln']:.2f}, ORT "
          f"{medians['ort']:.2f}; TVM/ORT {medians['tvm'] / medians['ort']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
