"""python -m kiln.conformance [--filter REGEX] [--jobs N] [--report docs/conformance.md]
    [--write-passing conformance/passing.txt] [--check-passing conformance/passing.txt]

Fetches the onnx 1.22.0 test data once (pip), runs the node tests, prints the counts (the
passes split by what they exercised) and the commonest reasons for failures, and writes the
Markdown report and the list of passing tests if asked. Exits 1 when any test gives a wrong
answer or crashes, or (with --check-passing) when a listed test no longer passes."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from .cases import discover, discover_light
from .data import ensure_test_data
from .passing import compare_passing, read_passing, write_passing
from .report import pass_counts, render, top_reasons
from .runner import DEFAULT_TIMEOUT, counts, run_tests


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m kiln.conformance",
                                     description="Run the ONNX backend node tests on Kiln.")
    parser.add_argument("--filter", default=None, help="only tests whose name matches REGEX")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--report", default=None, help="write the Markdown report here")
    parser.add_argument("--json", default=None, help="write every outcome as JSON here")
    parser.add_argument("--cache", default=None, help="test data folder "
                        "(default ~/.cache/kiln/onnx-1.22.0)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds per test before it counts as a hang")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every outcome")
    parser.add_argument("--light", action="store_true",
                        help="run the nine light model-zoo networks instead of node tests")
    parser.add_argument("--write-passing", default=None, metavar="FILE",
                        help="write the sorted names of the passing tests here (a full run)")
    parser.add_argument("--check-passing", default=None, metavar="FILE",
                        help="fail when a test listed in FILE does not pass; name new passes")
    args = parser.parse_args(argv)
    if args.write_passing and (args.filter or args.light):
        print("--write-passing needs the full node suite (no --filter, no --light)",
              file=sys.stderr)
        return 2

    root = ensure_test_data(args.cache)
    tests = discover_light(root / "light") if args.light else discover(root / "node",
                                                                        args.filter)
    if not tests:
        print(f"no node test matches {args.filter!r}", file=sys.stderr)
        return 2
    start = time.perf_counter()

    finished = []

    def progress(outcome) -> None:
        finished.append(outcome)
        if args.verbose or outcome.status in ("wrong", "crash"):
            print(f"{outcome.status:11s} {outcome.name}: {outcome.reason[:200]}", flush=True)
        if len(finished) % 100 == 0:
            print(f"  ... {len(finished)}/{len(tests)} done, "
                  f"{sum(o.status == 'pass' for o in finished)} pass", file=sys.stderr,
                  flush=True)

    outcomes = run_tests(tests, jobs=args.jobs, timeout=args.timeout, progress=progress)
    seconds = time.perf_counter() - start
    total = counts(outcomes)
    print(f"{len(outcomes)} tests in {seconds:.0f} s: " +
          ", ".join(f"{v} {k}" for k, v in total.items()))
    print("  passes: " + ", ".join(f"{v} {k}" for k, v in pass_counts(outcomes).items()))
    for key, count in top_reasons(outcomes):
        print(f"  {count:5d}  {key}")
    if args.report:
        command = "python -m kiln.conformance" + (f" --filter '{args.filter}'"
                                                  if args.filter else "") + \
            f" --jobs {args.jobs} --report {args.report}" + \
            (f" --write-passing {args.write_passing}" if args.write_passing else "")
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(render(outcomes, command, seconds, args.jobs))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    if args.write_passing:
        count = write_passing(outcomes, args.write_passing)
        print(f"wrote {count} passing tests to {args.write_passing}")
    regressed = []
    if args.check_passing:
        regressed, new = compare_passing(outcomes, read_passing(args.check_passing))
        for outcome in regressed:
            print(f"regressed   {outcome.name} ({outcome.status}): {outcome.reason[:200]}")
        for outcome in new:
            print(f"new pass    {outcome.name} (not in {args.check_passing}: refresh it with "
                  f"--write-passing)")
    return 1 if total["wrong"] or total["crash"] or regressed else 0


if __name__ == "__main__":
    sys.exit(main())
