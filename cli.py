"""The `kiln` command line: compile, run, inspect, check, targets, kernels, serve.

A user's mistake exits with status 2 and one message on stderr (`--debug` adds the
traceback); success exits 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Sequence, TextIO

from . import __version__
from .compiler.errors import KilnError

if TYPE_CHECKING:
    from .driver import CompileResult


class UsageError(KilnError, ValueError):
    """A command-line argument is malformed."""


def _dim(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value.isdigit():
        raise UsageError(f"--dim expects SYMBOL=N with N a non-negative integer, got '{text}'")
    return name, int(value)


def _shape(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, value = text.rpartition("=")
    parts = value.lower().split("x") if value else []
    if not sep or not name or not parts or not all(p.isdigit() for p in parts):
        raise UsageError(f"--shape expects INPUT=D0xD1x... (e.g. input=1x3x224x224), "
                         f"got '{text}'")
    return name, tuple(int(p) for p in parts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kiln", description="Compile ONNX models into "
                                     "self-contained shared libraries.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"kiln {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="compile MODEL.onnx into OUT.so (or the static "
                                       "OUT.a) and OUT.h")
    c.add_argument("model")
    c.add_argument("--target", default="host", help="x86_64 (host); see `kiln targets`")
    c.add_argument("-o", "--output", help="the library to write: OUT.so (shared) or OUT.a "
                   "(static); its header OUT.h and package files go beside it")
    c.add_argument("--dim", action="append", default=[], metavar="SYMBOL=N",
                   help="pin a symbolic dim, e.g. --dim batch=1")
    c.add_argument("--shape", action="append", default=[], metavar="INPUT=1x3x224x224",
                   help="pin an input's whole shape")
    c.add_argument("--const", action="append", default=[], metavar="INPUT=VALUE",
                   help="fix an input's value at compile time, e.g. --const sr=16000")
    c.add_argument("--prefix", default="kiln_", help="prefix of the exported C symbols")
    c.add_argument("--cc", help="C compiler to use (default: cc for the host, zig cc from "
                   "the ziglang package for cross targets; 'zig' for zig cc everywhere)")
    c.add_argument("--cpu", help="a specific core of the target (x86-64: native (default), "
                   "x86-64-v2/-v3/-v4, znver4, ..., or several levels in one artifact: "
                   "x86-64-v3,x86-64-v4; arm64: cortex-a76, neoverse-n2; riscv64-rvv: "
                   "sifive_x280 or vlen=256)")
    c.add_argument("--emit", choices=("c", "llvm"), default="c",
                   help="render kernels as C (default) or as LLVM IR through llvmlite")
    c.add_argument("--keep-sources", metavar="DIR", help="also write the generated C there")
    c.add_argument("--dump-ir-after", action="append", default=[], metavar="PASS",
                   help="print the IR after a pass (to stderr)")
    c.add_argument("--verify", action="store_true",
                   help="verify the graph IR after every pass and every lowered kernel")
    c.add_argument("--sanitize", action="store_true", help="build with AddressSanitizer and "
                   "UBSan (load with LD_PRELOAD=$(cc -print-file-name=libasan.so))")
    c.add_argument("--threads-max", type=int, metavar="N",
                   help="threads the kernel schedules keep busy (default: this host's cores)")
    c.add_argument("--schedule", metavar="FILE",
                   help="replay kernels and schedules from FILE (JSON lines, as "
                        "--dump-schedule writes them)")
    c.add_argument("--dump-schedule", metavar="FILE",
                   help="write the kernel and schedule chosen for every group to FILE")
    c.add_argument("--tuning", action="append", default=[], metavar="RECORDS.jsonl",
                   help="use the best schedule `kiln tune` measured for each kernel (repeat "
                        "to merge several files); records of another CPU are ignored")
    c.add_argument("--quantize", metavar="int8|dynamic",
                   help="quantize a float model: int8 (static, calibrated on --calibration; "
                        "prints each quantized tensor's error against float) or dynamic "
                        "(matmul activations quantized at run time)")
    c.add_argument("--calibration", metavar="SAMPLES.npz",
                   help="calibration samples for --quantize int8: one array per input, "
                        "samples along the first axis")
    c.add_argument("--calibrate", metavar="minmax|percentile|entropy",
                   help="how calibration sets each activation's range (default: minmax)")
    c.add_argument("--keep-float", action="extend", nargs="+", default=[], metavar="NODE",
                   help="ONNX node (or output) names to leave in float")
    c.add_argument("--quant-report", metavar="FILE",
                   help="also write the accuracy report of --quantize int8 there, as JSON")
    c.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)

    t = sub.add_parser("tune", help="search the kernels' schedules of MODEL.onnx on this "
                                    "machine and write tuning records for compile --tuning")
    t.add_argument("model")
    t.add_argument("-o", "--output", required=True, metavar="RECORDS.jsonl",
                   help="the records file: appended to, and resumed from when it exists")
    t.add_argument("--target", default="host", help="x86_64 (host); tuning measures on the "
                   "real CPU: a foreign target needs --ssh to a machine of that target")
    t.add_argument("--dim", action="append", default=[], metavar="SYMBOL=N")
    t.add_argument("--shape", action="append", default=[], metavar="INPUT=1x3x224x224")
    t.add_argument("--const", action="append", default=[], metavar="INPUT=VALUE")
    t.add_argument("--cpu", help="as for compile (default: native)")
    t.add_argument("--threads", type=int, default=None,
                   help="the deployment's thread count: built for and measured at it "
                        "(default: this host's cores)")
    t.add_argument("--budget", default="10m", metavar="TIME",
                   help="how long to search: 90s, 10m, 1h or seconds (default 10m)")
    t.add_argument("--trials", type=int, default=None, metavar="N",
                   help="at most N candidates per kernel")
    t.add_argument("--seed", type=int, default=0, help="seed of the search (default 0)")
    t.add_argument("--ssh", metavar="[USER@]HOST", help="measure on HOST over SSH (Kiln "
                   "installed there; any target, arm64 too): the artifacts are copied there")
    t.add_argument("--remote-python", default="python3", metavar="PYTHON",
                   help="with --ssh: the Python with Kiln on HOST (default python3)")
    t.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)

    r = sub.add_parser("run", help="run a compiled OUT.so on .npy or random inputs")
    r.add_argument("library")
    r.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--repeat", type=int, default=10, help="timed runs (default 10)")
    r.add_argument("--profile", action="store_true",
                   help="print the time per fused group (mean over the --repeat runs)")
    r.add_argument("--seed", type=int, default=0,
                   help="seed of the random values for inputs not given (default 0)")
    r.add_argument("--output-dir", metavar="DIR", help="save each output as NAME.npy there "
                   "(created if missing; '/' in a name is written as '_')")
    r.add_argument("--emulate", action="store_true",
                   help="run a foreign-architecture artifact under QEMU")
    r.add_argument("--vlen", type=int, default=None,
                   help="with --emulate: the emulated RISC-V vector length (default 256)")
    r.add_argument("--sysroot", metavar="DIR",
                   help="with --emulate: the folder with the target's C library (lib/); "
                        "default $KILN_SYSROOT_<TRIPLE>, e.g. KILN_SYSROOT_AARCH64_LINUX_GNU, "
                        "else /usr/<triple>")
    r.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)

    i = sub.add_parser("inspect", help="describe a model (inputs, outputs, ops, support) or a "
                                       "compiled OUT.so (its manifest)")
    i.add_argument("model", help="MODEL.onnx, or an artifact OUT.so or OUT.a")
    i.add_argument("--json", action="store_true",
                   help="for an artifact: print its whole manifest as JSON")
    i.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)

    ch = sub.add_parser("check", help="compile MODEL.onnx, run it beside ONNX Runtime and "
                                      "name the first node whose output diverges")
    ch.add_argument("model")
    ch.add_argument("--target", default="host", help="x86_64 (host); a foreign target runs "
                    "under QEMU")
    ch.add_argument("--dim", action="append", default=[], metavar="SYMBOL=N")
    ch.add_argument("--shape", action="append", default=[], metavar="INPUT=1x3x224x224")
    ch.add_argument("--const", action="append", default=[], metavar="INPUT=VALUE")
    ch.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                    help="an input's value (default: standard normal floats, integer zeros)")
    ch.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    ch.add_argument("--perturb", metavar="NODE", help=argparse.SUPPRESS)   # check's own tests
    ch.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)

    sub.add_parser("targets", help="list the targets Kiln can compile for")
    k = sub.add_parser("kernels", help="list the kernel registry: what each kernel runs and "
                                       "its schedule fields")
    k.add_argument("--markdown", action="store_true",
                   help="print it as the table in docs/architecture.md")

    s = sub.add_parser("serve", help="serve a model repository (or one model.so / model.onnx) "
                                     "over the Open Inference Protocol (docs/serving.md)")
    s.add_argument("source", metavar="REPO", help="a folder of MODEL/VERSION/model.so (or "
                   "model.onnx), or a single model.so / model.onnx")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                   "127.0.0.1; 0.0.0.0 for every interface)")
    s.add_argument("--http-port", type=int, default=8000, help="HTTP port (default 8000; 0: "
                   "any free port, printed at start)")
    s.add_argument("--grpc-port", type=int, default=8001, help="gRPC port "
                   "(inference.GRPCInferenceService; default 8001; 0: any free port, printed "
                   "at start; -1: no gRPC)")
    s.add_argument("--threads", type=int, help="runtime threads for all models together "
                   "(default: the usable cores)")
    s.add_argument("--grace-period", type=float, default=25.0, metavar="SECONDS",
                   help="how long SIGTERM waits for in-flight requests (default 25: the "
                   "exit fits in Kubernetes' 30 s)")
    s.add_argument("--max-body-mb", type=float, default=64.0,
                   help="largest request body accepted (default 64 MiB)")
    s.add_argument("--strict-readiness", action="store_true",
                   help="/v2/health/ready only when every model is ready")
    s.add_argument("--cache-dir", help="where compiled model.onnx files are cached (default "
                   "REPO/.kiln-cache)")
    s.add_argument("--poll-repository", type=float, metavar="SECONDS",
                   help="look at the repository every SECONDS and load what changed (new "
                   "versions take over without a gap); default: off")
    s.add_argument("--access-log", metavar="FILE", help="one JSON line per inference request "
                   "to FILE ('-': stderr); default: off")
    return parser


def _arena_parts(result: CompileResult) -> str:
    """The arena's parts in words: what a session's bytes are for, and the activations'
    lower bound (the most bytes alive at once) beside them."""
    parts = result.arena_parts
    words = [f"activations {parts.get('activations', result.arena_size)} (lower bound "
             f"{result.arena_lower_bound})"]
    if parts.get("workspace"):
        words.append(f"kernel workspace {parts['workspace']}")
    if parts.get("prepared"):
        words.append(f"filters prepared at session creation {parts['prepared']}")
    return ", ".join(words)


def cmd_compile(args: argparse.Namespace) -> int:
    from .driver import compile_detailed

    if not args.output:
        raise UsageError("no output path: add -o OUT.so")
    dims = dict(_dim(d) for d in args.dim)
    shapes = dict(_shape(s) for s in args.shape)
    from .frontends.onnx.pinned import parse_const
    consts = dict(parse_const(c) for c in args.const)
    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None
    try:
        result = compile_detailed(args.model, args.target, args.output, dims, shapes,
                                  consts=consts, prefix=args.prefix, cc=args.cc,
                                  keep_sources=args.keep_sources,
                                  dump_ir_after=args.dump_ir_after, verify=args.verify,
                                  cpu=args.cpu, emit=args.emit, sanitize=args.sanitize,
                                  threads_max=args.threads_max, schedule=args.schedule,
                                  dump_schedule=args.dump_schedule,
                                  tuning=args.tuning or None, progress=progress,
                                  quantize=args.quantize, calibration=args.calibration,
                                  calibrate=args.calibrate, keep_float=args.keep_float,
                                  quant_report=args.quant_report or args.quantize == "int8")
    finally:
        if progress is not None:
            progress.clear()
    if result.quant_table:
        print(result.quant_table)
    if args.quant_report:
        print(f"wrote the accuracy report of all {len(result.quant_report)} tensors to "
              f"{args.quant_report}")
    for note in result.notes:
        print(f"kiln: note: {note}", file=sys.stderr)
    print(f"wrote {result.library} ({result.library_size / 1e6:.2f} MB) and {result.header}")
    if result.package_files:
        cmake, pc = result.package_files
        name = pc.stem
        print(f"packages: {cmake} (CMake: find_package({name} CONFIG), target "
              f"{name}::{name}) and {pc} (pkg-config {name})")
    if result.library.suffix == ".a":
        from .runtime.build import STATIC_LINK_FLAGS
        print(f"link: cc app.c {result.library} {' '.join(STATIC_LINK_FLAGS)}")
    print(f"target {result.target}; {result.kernels} kernels; compiled in "
          f"{result.compile_seconds:.2f} s")
    print(f"arena {result.arena_size} bytes per session: {_arena_parts(result)}; "
          f"weights {result.weights_size} bytes")
    if "," in result.cpu:
        print(f"cpu levels {result.cpu}: a session runs the last whose instruction sets the "
              f"CPU has, and refuses a CPU without those of the first")
    elif result.checked_features:
        native = "" if args.cpu else " (this machine's instruction sets; --cpu x86-64-v3 " \
                                     "runs on any AVX2 CPU)"
        shown = result.checked_features
        print(f"cpu {result.cpu}{native}: session creation checks for {len(shown)} "
              f"instruction sets ({shown[0]} .. {shown[-1]}) and refuses a CPU without one")
    return 0


class _Progress:
    """One line on a terminal's stderr, rewritten as each compile stage starts (with the time
    so far), and cleared at the end: a long compile is not silent, and pipes stay clean."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.start = time.perf_counter()

    def __call__(self, stage: str) -> None:
        self.stream.write(f"\r\x1b[Kkiln: {stage} ({time.perf_counter() - self.start:.1f} s)")
        self.stream.flush()

    def clear(self) -> None:
        self.stream.write("\r\x1b[K")
        self.stream.flush()


def parse_budget(text: str) -> float:
    """Seconds of a budget written 90, 90s, 10m or 1h."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], units[text[-1]]) if text[-1:] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise UsageError(f"--budget {text}: give a time such as 90s, 10m or 1h")
    return seconds


def cmd_tune(args: argparse.Namespace) -> int:
    from .frontends.onnx.pinned import parse_const
    from .tune import tune

    budget = parse_budget(args.budget)
    dims = dict(_dim(d) for d in args.dim)
    shapes = dict(_shape(s) for s in args.shape)
    consts = dict(parse_const(c) for c in args.const)
    display = _TuneDisplay(sys.stderr)
    result = tune(args.model, args.output, args.target, dims, shapes, consts, args.cpu,
                  args.threads, budget, args.trials, args.seed, progress=display,
                  log=display.log, ssh=args.ssh, remote_python=args.remote_python)
    display.clear()
    print(result.summary())
    print(f"wrote {result.records}: compile with --tuning {result.records}")
    return 0


class _TuneDisplay:
    """The tuning progress bar: time used of the budget, kernels still searching, the best
    gain so far; one rewritten line on a terminal, a line per round elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, p) -> None:
        done = min(1.0, p.elapsed / p.budget)
        bar = "#" * int(20 * done) + "." * (20 - int(20 * done))
        left = max(0.0, p.budget - p.elapsed)
        line = (f"kiln tune [{bar}] {left:4.0f} s left, round {p.round}: {p.searching} of "
                f"{p.tasks} kernels searching, {p.measured} measured, {p.failed} failed; "
                f"model {p.model_speedup:.3f}x; best: {p.best}")
        self.stream.write(f"\r\x1b[K{line}" if self.tty else line + "\n")
        self.stream.flush()

    def log(self, message: str) -> None:
        self.clear()
        self.stream.write(f"kiln tune: {message}\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from .runtime import load

    if args.repeat < 1:
        raise UsageError(f"--repeat {args.repeat}: give a number of timed runs of at least 1")
    if args.sysroot is not None and not args.emulate:
        raise UsageError("--sysroot is where an emulated target's C library lives: add "
                         "--emulate")
    session = load(args.library, threads=args.threads,
                   emulator="qemu" if args.emulate else None, vlen=args.vlen,
                   sysroot=args.sysroot)
    given = npy_inputs(args.input)
    unknown = sorted(set(given) - {s.name for s in session.inputs})
    if unknown:
        raise UsageError(f"--input names no input of the model: {', '.join(unknown)} "
                         f"(inputs: {', '.join(s.name for s in session.inputs)})")
    feed = _feed(session, given, args.seed)
    outputs = session.run(feed)
    times = []
    repeat = 0 if args.emulate else args.repeat   # emulated time means nothing
    for _ in range(repeat):
        start = time.perf_counter()
        session.run(feed)
        times.append(time.perf_counter() - start)
    for name, value in outputs.items():
        print(f"{name}: {_summary(value)}")
    if args.output_dir:
        folder = Path(args.output_dir)
        for name, file_name in _output_files(list(outputs)).items():
            try:
                folder.mkdir(parents=True, exist_ok=True)
                np.save(folder / file_name, outputs[name])
            except OSError as exc:
                raise UsageError(f"--output-dir {folder}: cannot write {file_name} there: "
                                 f"{exc.strerror or exc}") from None
            renamed = "" if file_name == f"{name}.npy" else (
                " (renamed: '/' becomes '_')" if "/" in name or "\\" in name
                else " (renamed: the name was taken)")
            print(f"saved {name} to {folder / file_name}{renamed}")
    if times:
        times.sort()
        print(f"latency: median {times[len(times) // 2] * 1e3:.3f} ms over {len(times)} runs "
              f"(min {times[0] * 1e3:.3f} ms)")
    if args.profile:
        from .runtime.profile import format_profile, profile
        print(format_profile(profile(session, feed, runs=args.repeat)))
    return 0


def npy_inputs(items: Sequence[str]) -> dict:
    """NAME=FILE.npy arguments as {name: array}."""
    import numpy as np

    given = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            raise UsageError(f"--input expects NAME=FILE.npy, got '{item}'")
        try:
            given[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read '{path}' for input '{name}': {exc}") from None
    return given


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when every output matches ONNX Runtime, 1 when one differs."""
    from .check import check_model, describe
    from .frontends.onnx.pinned import parse_const

    report = check_model(args.model, args.target, dict(_dim(d) for d in args.dim),
                         dict(_shape(s) for s in args.shape),
                         dict(parse_const(c) for c in args.const), npy_inputs(args.input),
                         seed=args.seed, perturb=args.perturb)
    print(describe(report))
    return 0 if report.ok else 1


def _is_artifact(path: str) -> bool:
    """An ELF file (OUT.so) or an ar archive (OUT.a), not an ONNX model."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head[:4] == b"\x7fELF" or head == b"!<arch>\n"


def inspect_artifact(path: str, as_json: bool) -> int:
    """Print what a compiled artifact says it is (its manifest), without loading it: an
    artifact for another target is read the same way."""
    import json

    from .runtime.manifest import describe, read_manifest

    manifest = read_manifest(path)
    if manifest is None:
        raise UsageError(f"{path} has no manifest: it is not a Kiln artifact, or was built "
                         f"before artifacts carried one (compile the model again)")
    print(json.dumps(manifest, indent=2) if as_json else describe(manifest))
    return 0


def _feed(session, given: dict, seed: int) -> dict:
    """The inputs of one run: those `given`, and random values for the others (standard
    normal floats; 0 or 1 for integers and bools), each random one said on stdout."""
    import numpy as np

    from .runtime.inputs import random_feed

    feed = random_feed(session.inputs, given, seed)
    for spec in session.inputs:
        if spec.name not in given:
            how = "standard normal" if np.issubdtype(spec.dtype, np.floating) else "0 or 1"
            print(f"input {spec.name}: random {np.dtype(spec.dtype)}{list(spec.shape)} "
                  f"({how}, --seed {seed}; give --input {spec.name}=FILE.npy for real data)")
    return feed


def _summary(value) -> str:
    """`dtype[shape]`, the first values and the range of an output, on one line."""
    text = f"{value.dtype}{list(value.shape)}"
    if value.size == 0:
        return f"{text} (empty)"
    flat = value.reshape(-1)
    first = ", ".join(_scalar(v) for v in flat[:4].tolist())
    more = ", ..." if flat.size > 4 else ""
    return (f"{text} [{first}{more}] min {_scalar(flat.min().tolist())} "
            f"max {_scalar(flat.max().tolist())}")


def _scalar(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _output_files(names: list[str]) -> dict[str, str]:
    """A file name in the output folder for each output: NAME.npy, with '/' (and '\\') in
    NAME written as '_' so that no name (PaddlePaddle's 'save_infer_model/scale_0.tmp_0',
    or '../x') leaves the folder; a name taken twice gets a numbered suffix."""
    files: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        stem = name.replace("/", "_").replace("\\", "_")
        candidate, count = f"{stem}.npy", 1
        while candidate in taken:
            count += 1
            candidate = f"{stem}_{count}.npy"
        taken.add(candidate)
        files[name] = candidate
    return files


def cmd_inspect(args: argparse.Namespace) -> int:
    if _is_artifact(args.model):
        return inspect_artifact(args.model, args.json)
    import onnx

    from .compiler.errors import ModelLoadError
    from .frontends.onnx import load_model, scan
    from .frontends.onnx import converters  # noqa: F401  (fill the registry)
    from .frontends.onnx.needs import compile_needs

    model = load_model(args.model, external_data=False)
    graph = model.graph
    print(f"model: {graph.name or '(unnamed)'}  producer: {model.producer_name} "
          f"{model.producer_version}")
    print("opsets: " + ", ".join(f"{o.domain or 'ai.onnx'} {o.version}"
                                 for o in model.opset_import))
    initializers = {t.name for t in graph.initializer}

    def describe(info: onnx.ValueInfoProto) -> str:
        from .frontends.onnx.importer import dtype_label

        tensor = info.type.tensor_type
        dtype = dtype_label(tensor.elem_type).lower()
        if not tensor.HasField("shape"):
            return f"  {info.name}: {dtype} (shape not declared)"
        return f"  {info.name}: {dtype}[{', '.join(_dim_label(d) for d in tensor.shape.dim)}]"

    print("inputs:")
    for info in graph.input:
        if info.name not in initializers:
            print(describe(info))
    print("outputs:")
    for info in graph.output:
        print(describe(info))
    print(f"nodes: {len(graph.node)}; initializers: {len(graph.initializer)}")
    for (domain, op), count in sorted(Counter((n.domain or "ai.onnx", n.op_type)
                                              for n in graph.node).items()):
        print(f"  {count:5d}  {op}" + ("" if domain == "ai.onnx" else f"  ({domain})"))
    problems = scan(model)
    if problems:
        print(f"unsupported: {len(problems)}")
        for problem in problems:
            print(f"  - {problem}")
        return 0
    try:
        free, refused = compile_needs(load_model(args.model))
    except ModelLoadError as exc:   # external data missing: the graph alone was enough above
        print(f"unsupported: none among the ops (the import compile runs was not checked: "
              f"{exc})")
        return 0
    print("unsupported: none" if not refused else
          f"unsupported: {len(refused)}" + (" (found with the free dims set to 1)"
                                            if free else ""))
    for line in refused:
        print(f"  - {line}")
    print("free dims (compile needs a value for each):" if free else "free dims: none")
    for line in free:
        print(f"  - {line}")
    return 0


def _dim_label(dim) -> str:
    """An input dim as inspect shows it: its size, its name (quoted unless it is an
    identifier, so that a dim named '?' differs from an unnamed one), or ? if unnamed."""
    if dim.HasField("dim_value") and dim.dim_value >= 0:
        return str(dim.dim_value)
    if dim.dim_param:
        return dim.dim_param if dim.dim_param.isidentifier() else f"'{dim.dim_param}'"
    return "?"


def cmd_targets(args: argparse.Namespace) -> int:
    from .targets import TARGETS
    from .targets.target import PLANNED

    for target in TARGETS.values():
        host = " (host)" if target.is_host else ""
        aliases = f" [{', '.join(target.aliases)}]" if target.aliases else ""
        print(f"{target.name}{aliases}{host}: {target.triple}, {target.description}")
        if target.cpus:
            print(f"    --cpu: {', '.join(target.cpus)} (default {target.cpu or 'native'})")
    for name, why in PLANNED.items():
        print(f"{name}: planned ({why})")
    return 0


def cmd_kernels(args: argparse.Namespace) -> int:
    from .codegen.kernels import kernel_table

    print(kernel_table(markdown=args.markdown))
    return 0


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of what is still
    buffered for a closed pipe does not report a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):   # stdout is no file (an in-process caller)
        pass


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import main as serve

    return serve(args.source, host=args.host, http_port=args.http_port,
                 grpc_port=args.grpc_port, threads=args.threads,
                 grace_period=args.grace_period, max_body_mb=args.max_body_mb,
                 strict_readiness=args.strict_readiness, cache_dir=args.cache_dir,
                 poll_repository=args.poll_repository, access_log=args.access_log)


COMMANDS = {"compile": cmd_compile, "run": cmd_run, "inspect": cmd_inspect,
            "check": cmd_check, "targets": cmd_targets, "kernels": cmd_kernels,
            "serve": cmd_serve, "tune": cmd_tune}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = COMMANDS[args.command](args)
        sys.stdout.flush()   # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:   # the reader went away (`kiln targets | head -1`): stop quietly
        _drop_stdout()
        return 128 + signal.SIGPIPE
    except KilnError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"kiln: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kiln: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in Kiln: say so, and how to report it
        if args.debug:
            traceback.print_exc()
        print(f"kiln: internal error: {type(exc).__name__}: {exc} (rerun with --debug for "
              f"the traceback, and please report it)", file=sys.stderr)
        return 1
