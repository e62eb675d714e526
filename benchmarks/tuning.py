"""Tuned Kiln against default Kiln and ONNX Runtime, side by side, in one process.

    python -m kiln.benchmarks.tuning --budget 10m --output docs/tuning-results.md

For each model and thread count: `kiln tune` for the budget (records kept in --records,
so a rerun resumes), then the default and the tuned artifact are compiled, their outputs
checked against ONNX Runtime's, and the three are timed alternately, burst by burst
(benchmarks/models.py). Then each second model (another export of the same network) is
compiled with the first one's records alone, untuned itself, and timed the same way: what
a tune of one model gives the next. The report has the tuning curve of the first model
(estimated latency, from the per-group profiles, against tuning time) and every task's
gain. TVM MetaSchedule's result is reported beside when apache-tvm imports.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

from .. import __version__, zoo
from ..cli import parse_budget
from ..driver import compile_detailed
from ..runtime import load
from ..tune import tune
from .machine import cpu_summary
from .models import check_outputs, model_inputs, ort_runner, time_alternately

MODELS = ["resnet18", "mobilenet_v2", "bert_small_random"]
#: model -> another export of the same network, compiled with the first one's records only
SECOND = {"resnet18": "resnet18_dynamo", "mobilenet_v2": "mobilenet_v2_dynamo",
          "bert_small_random": "bert_small_random_dynamo"}


def _timed(name: str, model, feed, dims, threads: int, workdir: Path, records: Path | None,
           runs: int) -> dict:
    """Compile default and (with records) tuned, check both, time them beside ORT."""
    ort = ort_runner(model, threads)
    runners, sessions = {}, []
    for kind, tuning in (("default", None), ("tuned", records)):
        if kind == "tuned" and records is None:
            continue
        library = workdir / f"{name}_{threads}_{kind}.so"
        compile_detailed(model, "x86_64", library, dims, threads_max=threads, tuning=tuning)
        session = load(library, threads=threads)
        sessions.append(session)
        check_outputs(f"{name} {kind}", session.run, ort, feed)
        runners[kind] = session.run
    runners["ort"] = ort
    timings = time_alternately(runners, feed, warmup=3, runs=runs, budget_s=20)
    for session in sessions:
        session.close()
    return {k: t.median for k, t in timings.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln.benchmarks.tuning",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS, choices=zoo.MODELS)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--budget", default="10m", help="tuning time per model and thread "
                        "count (default 10m)")
    parser.add_argument("--records", default="tuning-records",
                        help="folder of the records files (resumed from; default "
                             "./tuning-records)")
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each (default 30)")
    parser.add_argument("--output", help="also write the report (markdown) here")
    args = parser.parse_args(argv)
    budget = parse_budget(args.budget)
    folder = Path(args.records)
    folder.mkdir(parents=True, exist_ok=True)
    command = "python -m kiln.benchmarks.tuning " + " ".join(argv if argv is not None
                                                             else sys.argv[1:])
    lines = ["# Tuning: `kiln tune` against the defaults and ONNX Runtime", "",
             f"Kiln {__version__}, {cpu_summary()}, Python {platform.python_version()}. "
             f"Reproduce: `{command}`.", "",
             "| model | threads | tuning | default ms | tuned ms | tuned/default | "
             "ORT ms | default/ORT | tuned/ORT |", "|---|---|---|---|---|---|---|---|---|"]
    details, second_rows, curves = [], [], []
    try:
        import tvm  # noqa: F401
        tvm_note = "apache-tvm imports, but MetaSchedule is not run by this benchmark yet."
    except ImportError:
        tvm_note = "apache-tvm does not import here, so TVM MetaSchedule was not run."
    with tempfile.TemporaryDirectory(prefix="kiln-tuning-bench-") as scratch:
        workdir = Path(scratch)
        for name in args.models:
            model = zoo.load(name)
            feed, dims = model_inputs(model)
            for threads in args.threads:
                records = folder / f"{name}-{threads}t.jsonl"
                print(f"tuning {name} at {threads} thread(s) for {budget:.0f} s ...",
                      file=sys.stderr, flush=True)
                result = tune(model, records, "x86_64", dims, threads=threads, budget=budget)
                row = _timed(name, model, feed, dims, threads, workdir, records, args.runs)
                lines.append(f"| {name} | {threads} | {result.seconds:.0f} s, "
                             f"{result.measured} measured, {result.failed} failed | "
                             f"{row['default']:.2f} | {row['tuned']:.2f} | "
                             f"{row['tuned'] / row['default']:.3f} | {row['ort']:.2f} | "
                             f"{row['default'] / row['ort']:.3f} | "
                             f"{row['tuned'] / row['ort']:.3f} |")
                details += [f"### {name}, {threads} thread(s)", "", "```",
                            result.summary(), "```", ""]
                if not curves:
                    curves = [f"Tuning curve of {name} at {threads} thread(s): estimated "
                              f"latency (sum of the groups' best times) against tuning time.",
                              "", "| seconds | estimated ms |", "|---|---|"]
                    step = max(1, len(result.curve) // 12)
                    points = result.curve[::step] + result.curve[-1:]
                    curves += [f"| {t:.0f} | {s * 1e3:.3f} |" for t, s in points]
                    curves.append("")
                other = SECOND.get(name)
                if other:
                    second = zoo.load(other)
                    second_feed, second_dims = model_inputs(second)
                    row = _timed(other, second, second_feed, second_dims, threads, workdir,
                                 records, args.runs)
                    second_rows.append(
                        f"| {other} | {name} | {threads} | {row['default']:.2f} | "
                        f"{row['tuned']:.2f} | {row['tuned'] / row['default']:.3f} |")
                print("\n".join(lines[-1:]), file=sys.stderr, flush=True)
    lines += ["", "Medians of alternated bursts; ratios below 1 are faster. " + tvm_note, ""]
    if second_rows:
        lines += ["## A second model, with the first one's records only", "",
                  "| model | records of | threads | default ms | with records ms | ratio |",
                  "|---|---|---|---|---|---|", *second_rows, ""]
    lines += curves + ["## Kernel by kernel", "", *details]
    report = "\n".join(lines)
    print(report)
    if args.output:
        Path(args.output).write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
