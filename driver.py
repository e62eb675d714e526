"""The driver, above every stage: compile_model takes an ONNX model through import, the
passes and codegen to a shared library (OUT.so) or a static one (OUT.a), its header OUT.h,
and the package files that let CMake and pkg-config find them (runtime/packaging.py)."""

from __future__ import annotations

import difflib
import hashlib
import inspect
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import __version__
from .codegen.kernels import KernelSelector
from .codegen.kernels.select import (line_key, read_schedule_file, schedule_lines,
                                     select_kernels)
from .codegen.kernels.tuning_records import best_lines, read_records
from .codegen.lower.gemm import cpu_features, microkernel_bits
from .codegen.module import generate
from .codegen.renderers import renderer_for
from .codegen.schedules import KernelTarget, as_dict
from .compiler.errors import KilnError
from .compiler.ir import Graph
from .compiler.ops.storage import check_storage_uses
from .frontends.onnx import import_model, load_model
from .passes.manager import run_passes
from .passes.quantize import RECORD, REQUEST
from .quantizer.plan import named_nodes, prepare, quantize_options
from .quantizer.report import Row, table, write_json
from .runtime.abi import ModelSpec, TensorSpec, check_prefix
from .runtime.build import RUNTIME_SOURCES, runtime_cflags, runtime_ldflags
from .runtime.header import render_header
from .runtime.cpu_check import Level, cpu_check_source
from .runtime.manifest import MANIFEST_VERSION, link_symbol, manifest_source
from .runtime.packaging import write_package_files
from .targets import get_target
from .targets.host_cpu import host_cpu
from .targets.toolchain import (SANITIZE_CFLAGS, BuildUnit, RuntimeBuild, build_shared,
                                build_static, checked_features, cpu_flags)

#: What `-o` may end with, and the kind of library each writes.
OUTPUT_KINDS = {".so": "shared", ".a": "static"}


class OptionError(KilnError, ValueError):
    """A compile option has a bad value."""


@dataclass
class CompileResult:
    """What a compilation produced, and the numbers users ask about."""

    library: Path
    header: Path
    target: str
    compile_seconds: float
    arena_size: int
    arena_lower_bound: int
    weights_size: int
    kernels: int
    phases: dict[str, float] = field(default_factory=dict)
    cpu: str = "native"                 # the CPU the code is built for
    checked_features: tuple[str, ...] = ()   # what session creation checks the CPU has
    package_files: tuple[Path, ...] = ()     # <name>-config.cmake and <name>.pc beside it
    notes: tuple[str, ...] = ()              # tuning records left out, and why
    #: what the arena holds (activations, workspace, prepared): the largest CPU level's
    arena_parts: dict[str, int] = field(default_factory=dict)
    quantized: tuple = ()                    # passes.quantize.QuantizedTensor per activation
    quant_report: tuple[Row, ...] = ()       # the accuracy rows, worst first (quant_report)
    quant_table: str = ""                    # the short table of them compile prints

    @property
    def library_size(self) -> int:
        return self.library.stat().st_size


def host_threads() -> int:
    """The cores this process may run on: the default thread budget of schedules."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def compile_model(model: Any, target: str = "host", output: str | Path = "model.so",
                  dims: Mapping[str, int] | None = None,
                  shapes: Mapping[str, Sequence[int]] | None = None,
                  **options: Any) -> str:
    """Compile `model` (a path, bytes or onnx.ModelProto) into `output` (.so or .a, + its .h
    header and package files); `options` are compile_detailed's keyword-only parameters
    (COMPILE_OPTIONS)."""
    check_options(options)
    return str(compile_detailed(model, target, output, dims, shapes, **options).library)


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse an option compile_detailed does not take (a misspelt `const=`), naming the
    closest one and every one there is, instead of Python's bare TypeError."""
    unknown = sorted(set(options) - set(COMPILE_OPTIONS))
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, COMPILE_OPTIONS, n=1)
        hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    raise OptionError(f"unknown compile option{'s' if len(unknown) > 1 else ''} "
                      f"{', '.join(hints)}; the options are: {', '.join(COMPILE_OPTIONS)}")


def compile_detailed(model: Any, target: str = "host", output: str | Path = "model.so",
                     dims: Mapping[str, int] | None = None,
                     shapes: Mapping[str, Sequence[int]] | None = None, *,
                     prefix: str = "kiln_", cc: str | None = None, keep_sources: str | Path |
                     None = None, dump_ir_after: Sequence[str] = (), verify: bool = False,
                     log: Callable[[str], None] | None = None, cpu: str | None = None,
                     emit: str = "c", consts: Mapping[str, Any] | None = None,
                     sanitize: bool = False, threads_max: int | None = None,
                     schedule: str | Path | None = None,
                     dump_schedule: str | Path | None = None,
                     tuning: str | Path | Sequence[str | Path] | None = None,
                     progress: Callable[[str], None] | None = None,
                     quantize: str | None = None, calibration: Any = None,
                     calibrate: str | None = None, keep_float: Sequence[str] = (),
                     quant_report: str | Path | bool | None = None,
                     _metadata: Mapping[str, Any] | None = None) -> CompileResult:
    """compile_model, returning a CompileResult with sizes and timings.

    consts: inputs fixed to a value at compile time, e.g. {"sr": 16000}.
    threads_max: the thread budget default schedules keep busy (default: this host's cores).
    schedule: a schedule file (JSON lines) whose kernels and schedules replace the defaults
    for the groups with the same signature; dump_schedule: write the ones chosen there.
    tuning: `kiln tune` records (a file or several, merged): each kernel measured faster
    than its default on this machine, at this thread count, takes its best schedule; a
    schedule file's line wins over a record; CompileResult.notes says which records were
    ignored and why.
    progress: called with what starts as each stage starts ("running the passes"), for a
    terminal to show while a long compile runs.
    quantize: "int8" (static post-training quantization calibrated on `calibration`, a .npz
    path or {input name: array[N, ...]}, with the `calibrate` method: minmax, percentile or
    entropy) or "dynamic" (matmul activations quantized at run time); keep_float: ONNX node
    or output names left in float; quant_report: True to measure the accuracy of each
    quantized tensor against float on the samples (CompileResult.quant_report), or a path
    to write it to as JSON too. See docs/quantization.md.
    """

    start = time.perf_counter()
    phases: dict[str, float] = {}

    def phase(name: str, began: float, then: str = "") -> float:
        """Add how long stage `name` took (once per CPU level); tell `progress` the stage that
        starts (`then`)."""
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - began
        if progress is not None and then:
            progress(then)
        return now

    quant = quantize_options(quantize, calibration, calibrate, keep_float,
                             bool(quant_report))
    if output is None or str(output) == "":
        raise OptionError("no output path given: pass -o OUT.so (output='model.so')")
    output = Path(output)
    if output.is_dir():
        raise OptionError(f"output '{output}' is a directory; give a file path such as "
                          f"{output / 'model.so'}")
    if not output.parent.exists():
        raise OptionError(f"the output folder '{output.parent}' does not exist")
    kind = OUTPUT_KINDS.get(output.suffix)
    if kind is None:
        raise OptionError(f"output '{output}': the file name says what to build and must end "
                          f"in .so (a shared library) or .a (a static library), e.g. "
                          f"{output.with_suffix('.so')}")
    if kind == "static" and sanitize:
        raise OptionError(f"--sanitize builds a shared library to load with LD_PRELOAD; "
                          f"write {output.with_suffix('.so')}, or build your program and a "
                          f".so with -fsanitize=address,undefined")
    check_prefix(prefix)
    target_spec = get_target(target)
    renderer = renderer_for(emit)
    threads = host_threads() if threads_max is None else threads_max
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 4096:
        raise OptionError(f"threads_max={threads_max!r}: give a thread count from 1 to 4096")
    lines = read_schedule_file(schedule) if schedule is not None else []
    replayed = {line_key(line) for _, line in lines if isinstance(line, dict)
                and all(k in line for k in ("signature", "target", "cpu", "vector_bits"))}
    tuning_records = read_records(_paths(tuning)) if tuning else []
    notes: list[str] = []

    levels = _cpu_levels(cpu, target_spec, emit)
    if progress is not None:
        progress("loading the model")
    t = time.perf_counter()
    proto = load_model(model)
    t = phase("load", t, "importing the graph")
    metadata = dict(_metadata or {})
    report: list[Row] = []
    quant_table = ""
    if quant is not None:
        proto = named_nodes(proto)

        def helper_build(extra: dict, path: Path) -> CompileResult:
            return compile_detailed(proto, "host", path, dims, shapes, consts=consts,
                                    threads_max=threads, _metadata=extra)

        metadata[REQUEST], report, samples = prepare(
            quant, proto, import_model(proto, dims=dims, shapes=shapes, consts=consts),
            helper_build, progress)
        if report:
            quant_table = table(report, quant.method, samples)
        if isinstance(quant_report, (str, os.PathLike)):
            write_json(quant_report, report, quant.method, samples)
        t = phase("calibrate", t, "importing the graph")
    builds = []
    for index, level in enumerate(levels):
        graph: Graph = import_model(proto, dims=dims, shapes=shapes, consts=consts)
        check_storage_uses(graph, renderer=emit)
        t = phase("import", t, f"running the passes over {len(graph.nodes)} nodes")
        selector = kernel_selector(target_spec, emit, level, threads, lines)
        level_lines = lines
        if tuning_records:
            tuned, level_notes = best_lines(
                tuning_records, target_spec.name, selector.cpu, selector.vector_bits,
                host_cpu() if target_spec.is_host else None, threads)
            level_lines = [*lines, *((w, line) for w, line in tuned
                                     if line_key(line) not in replayed)]
            notes += [n for n in level_notes if n not in notes]
            selector = kernel_selector(target_spec, emit, level, threads, level_lines)
        vector_bits = selector.vector_bits
        graph.metadata["kernel_choice"] = selector   # layout, padding and fusion ask it
        graph.metadata.update(metadata)
        graph = run_passes(graph, verify_each=verify, dump_after=set(dump_ir_after), log=log)
        t = phase("passes", t, f"generating the kernels of {len(graph.groups)} groups")
        stem = "" if len(levels) == 1 else f"_{index}"
        sources = generate(graph, target_spec.name, __version__, renderer=renderer,
                           selector=selector, verify=verify, blob=f"weights{stem}.bin")
        builds.append(_LevelBuild(level, stem, graph, selector, sources, vector_bits,
                                  checked_features(target_spec, cc, level)))
        t = phase("codegen", t, f"building {sources.kernels} kernels with the C compiler")
    if dump_schedule is not None:
        Path(dump_schedule).write_text("".join(
            line + "\n" for b in builds for line in schedule_lines(b.graph, b.selector)))
    best = builds[-1]
    graph, sources = best.graph, best.sources

    header_path = output.with_suffix(".h")
    workdir = Path(tempfile.mkdtemp(prefix="kiln-build-"))
    try:
        units = []
        for b in builds:
            (workdir / f"model{b.stem}.c").write_text(b.sources.model_c)
            (workdir / f"weights{b.stem}.bin").write_bytes(b.sources.weights)
            (workdir / f"weights{b.stem}.S").write_text(b.sources.weights_s)
            objects = renderer.objects(target_spec, workdir, b.cpu)
            defines = () if not b.stem else (f"-DKILN_MODEL=kiln_model{b.stem}",
                                             f"-Dkiln_weights=kiln_weights{b.stem}")
            units.append(BuildUnit((f"model{b.stem}.c", f"weights{b.stem}.S", *objects),
                                   b.cpu, defines))
        manifest = {
            "manifest_version": MANIFEST_VERSION, "kiln": __version__,
            "model": {"name": graph.name, "sha256": _sha256(model),
                      "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
                      "opsets": {o.domain or "ai.onnx": o.version for o in proto.opset_import}},
            "target": {"name": target_spec.name, "triple": target_spec.triple},
            "options": _options(dims, shapes, consts, prefix, cc, emit, sanitize, threads,
                                quant),
            "inputs": [_tensor(t) for t in sources.inputs],
            "outputs": [_tensor(t) for t in sources.outputs],
            "levels": [_level_entry(target_spec, b) for b in builds]}
        build_symbol = link_symbol(manifest, prefix)   # OUT.h refers to it: see header.h.j2
        (workdir / "manifest.c").write_text(manifest_source(manifest, build_symbol))
        (workdir / "cpu_check.c").write_text(cpu_check_source(
            [Level("KILN_MODEL" if not b.stem else f"kiln_model{b.stem}", b.cpu or "native",
                   b.checked) for b in builds]))
        build_target = workdir / f"model{output.suffix}"
        runtime = RuntimeBuild((*RUNTIME_SOURCES, workdir / "cpu_check.c",
                                workdir / "manifest.c"),
                               tuple(runtime_cflags(prefix)),
                               tuple(runtime_ldflags(soname=output.name)))
        if kind == "static":
            build_static(workdir, units, build_target, target_spec, runtime, prefix, cc=cc)
        else:
            build_shared(workdir, units, build_target, target_spec, runtime, cc=cc,
                         extra_flags=SANITIZE_CFLAGS if sanitize else ())
        t = phase("cc", t)
        model_spec = ModelSpec(graph.name,
                          [TensorSpec(i.name, i.dtype_name, i.dtype_code, i.shape)
                           for i in sources.inputs],
                          [TensorSpec(i.name, i.dtype_name, i.dtype_code, i.shape)
                           for i in sources.outputs],
                          workspace_size=max(b.sources.arena_size for b in builds),
                          threads_max=threads)
        header_text = render_header(model_spec, prefix, header_path.name, build_symbol)
        if keep_sources is not None:
            keep = Path(keep_sources)
            keep.mkdir(parents=True, exist_ok=True)
            for name in [*(f"{part}{b.stem}.{ext}" for b in builds
                           for part, ext in (("model", "c"), ("weights", "S"),
                                             ("weights", "bin"))),
                         "manifest.c", "cpu_check.c", "kernels.ll"]:
                if (workdir / name).exists():   # kernels.ll: the LLVM renderer's kernels
                    shutil.copy(workdir / name, keep / name)
        shutil.move(str(build_target), output)
        header_path.write_text(header_text)
        package_files = write_package_files(output, header_path, graph.name,
                                            target_spec.name, __version__)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    largest = max(builds, key=lambda b: b.sources.arena_size).sources
    return CompileResult(output, header_path, target_spec.name, time.perf_counter() - start,
                         largest.arena_size, graph.plan.lower_bound, len(sources.weights),
                         sources.kernels, phases,
                         ",".join(level["cpu"] for level in manifest["levels"]),
                         tuple(f.name for f in best.checked), package_files, tuple(notes),
                         largest.arena_parts, tuple(graph.metadata.get(RECORD, ())),
                         tuple(report), quant_table)


@dataclass
class _LevelBuild:
    """The model lowered for one CPU level of the artifact."""

    cpu: str | None
    stem: str                   # "" for the only level, else "_<index>" (its file names)
    graph: Graph
    selector: KernelSelector
    sources: Any                # codegen's ModuleSources
    vector_bits: int
    checked: tuple              # the instruction sets session creation checks for it


def plan_kernels(model: Any, target: str = "host",
                 dims: Mapping[str, int] | None = None,
                 shapes: Mapping[str, Sequence[int]] | None = None,
                 consts: Mapping[str, Any] | None = None, cpu: str | None = None,
                 threads_max: int | None = None, emit: str = "c",
                 schedule_lines: Sequence[tuple[str, dict[str, Any]]] = ()
                 ) -> tuple[Graph, KernelSelector]:
    """The graph after the passes with every group's kernel and schedule recorded, and the
    selector that chose them, as compile_detailed would build it for one CPU level: what
    `kiln tune` searches over, without generating or building anything."""
    target_spec = get_target(target)
    threads = host_threads() if threads_max is None else threads_max
    graph = import_model(load_model(model), dims=dims, shapes=shapes, consts=consts)
    check_storage_uses(graph, renderer=emit)
    selector = kernel_selector(target_spec, emit, cpu, threads, schedule_lines)
    graph.metadata["kernel_choice"] = selector
    graph = run_passes(graph)
    select_kernels(graph, selector)
    return graph, selector


def kernel_selector(target: Any, emit: str, level: str | None, threads: int,
                    lines: Sequence[tuple[str, dict[str, Any]]] = ()) -> KernelSelector:
    """The kernel selector of one CPU level: the vector width and the instruction sets the
    renderer and the CPU allow, the target's caches, the thread budget and the schedule
    lines to replay."""
    capabilities = renderer_for(emit).capabilities
    vector_bits = microkernel_bits(target, level) if "vector" in capabilities else 0
    features = cpu_features(target, level) if "int_dot" in capabilities else frozenset()
    return KernelSelector(KernelTarget(vector_bits, target.l1d_bytes, target.l2_bytes, threads,
                                       features),
                          target.name, level or "native", lines)


def _paths(paths: str | Path | Sequence[str | Path]) -> list[str | Path]:
    return [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)


def _cpu_levels(cpu: str | None, target: Any, emit: str) -> list[str | None]:
    """The CPUs the artifact carries code for: `cpu`, or each of a comma-separated list of
    x86-64 levels or CPUs (tried at session creation from the last to the first)."""
    if cpu is None or "," not in cpu:
        return [cpu]
    levels = [part.strip() for part in cpu.split(",")]
    if target.elf_machine != "x86_64":
        raise OptionError(f"--cpu {cpu}: several CPU levels in one artifact are for x86-64 "
                          f"targets, not {target.name}")
    if emit != "c":
        raise OptionError(f"--cpu {cpu}: an artifact of several CPU levels is built from C "
                          f"(--emit c)")
    if any(not level for level in levels) or len(set(levels)) != len(levels):
        raise OptionError(f"--cpu {cpu}: give distinct CPUs, least demanding first "
                          f"(e.g. x86-64-v3,x86-64-v4)")
    for level in levels:
        cpu_flags(target, level)   # an unknown CPU is an error naming the known ones
    return levels


def _level_entry(target: Any, build: _LevelBuild) -> dict[str, Any]:
    """What the manifest says of one CPU level: its features are the instruction sets its
    code may use, each checked at session creation on x86-64 (elsewhere the target's
    baseline, which every core has); then its sizes and every group's kernel."""
    return {"cpu": build.cpu or target.cpu or "native",
            "cflags": cpu_flags(target, build.cpu), "vector_bits": build.vector_bits,
            "features": [f.name for f in build.checked] or list(target.features),
            "arena_bytes": build.sources.arena_size, "weight_bytes": len(build.sources.weights),
            "kernels": build.sources.kernels,
            "schedules": [{"group": g.name, "nodes": [n.name for n in g.nodes],
                           "kernel": g.kernel.kernel, "schedule": as_dict(g.kernel.schedule)}
                          for g in build.graph.groups or [] if g.kernel is not None]}


def _sha256(model: Any) -> str:
    """sha256 of the model as given: a file's bytes, the bytes, or a ModelProto's encoding."""
    if isinstance(model, (str, os.PathLike)):
        data = Path(model).read_bytes()
    elif isinstance(model, (bytes, bytearray)):
        data = bytes(model)
    else:
        data = model.SerializeToString()
    return hashlib.sha256(data).hexdigest()


def _tensor(info: Any) -> dict[str, Any]:
    return {"name": info.name, "dtype": info.dtype_name, "shape": list(info.shape)}


def _options(dims, shapes, consts, prefix: str, cc: str | None, emit: str, sanitize: bool,
             threads: int, quant: Any = None) -> dict[str, Any]:
    """The compile options that shape the artifact, as JSON values (constants as values when
    small, else their shape). A schedule file is not one: the schedules it gave are in the
    manifest, and replaying a dumped file gives the same artifact, byte for byte."""
    def value(v: Any) -> Any:
        array = np.asarray(v)
        return array.tolist() if array.size <= 16 else {"shape": list(array.shape),
                                                        "dtype": str(array.dtype)}

    options: dict[str, Any] = {"threads_max": threads, "prefix": prefix, "emit": emit}
    if dims:
        options["dims"] = dict(dims)
    if shapes:
        options["shapes"] = {k: list(v) for k, v in shapes.items()}
    if consts:
        options["consts"] = {k: value(v) for k, v in consts.items()}
    if cc:
        options["cc"] = cc
    if sanitize:
        options["sanitize"] = True
    if quant is not None:
        options["quantize"] = {"mode": quant.mode, "keep_float": list(quant.keep_float),
                               **({"calibrate": quant.method} if quant.mode == "int8" else {})}
    return options


#: The keyword options of kiln.compile / compile_model: compile_detailed's keyword-only ones.
COMPILE_OPTIONS = tuple(name for name, parameter in
                        inspect.signature(compile_detailed).parameters.items()
                        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
                        and not name.startswith("_"))
