"""Build an artifact from generated sources: the system `cc` for the host target, zig cc (from
the ziglang package) for cross targets, or whatever compiler the user names with --cc."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..compiler.errors import ToolchainError
from .target import Target



@dataclass(frozen=True)
class RuntimeBuild:
    """What the runtime adds to every artifact's build (runtime/build.py says which): its C
    sources and the flags they need. The driver passes it in: targets sit below the runtime."""

    sources: tuple[Path, ...]
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]


#: Optimization flags of every artifact: no errno from math calls (lets loops vectorize),
#: no fast-math (NaN and Inf behave as the reference does).
BASE_CFLAGS = ("-O3", "-std=gnu11", "-fno-math-errno", "-fno-semantic-interposition")

#: `kiln compile --sanitize`: AddressSanitizer + UndefinedBehaviorSanitizer. The artifact then
#: needs the sanitizer runtime loaded first (LD_PRELOAD=$(cc -print-file-name=libasan.so)).
#: -O1 (after -O3, so it wins) as the sanitizers advise: builds 2-3x faster, same checks.
SANITIZE_CFLAGS = ("-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                   "-fno-sanitize-recover=all", "-O1")


def find_cc(cc: str | None = None) -> str:
    """The C compiler to use: `cc` if given, else the first of cc, gcc, clang on PATH."""
    candidates = [cc] if cc else ["cc", "gcc", "clang"]
    for candidate in candidates:
        path = shutil.which(candidate)
        if path:
            return path
    raise ToolchainError(f"no C compiler found (tried {', '.join(candidates)}); install gcc "
                         f"(apt-get install gcc) or pass --cc")


def zig_cache_dir() -> Path:
    """Where zig keeps its per-target libc and object cache: under the user's cache folder."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kiln" / "zig"


def zig_command() -> list[str]:
    """`python -m ziglang`: the zig shipped by the ziglang dependency."""
    try:
        import ziglang  # noqa: F401
    except ImportError:
        raise ToolchainError("cross targets are built with zig from the 'ziglang' package, "
                             "which is not installed: pip install ziglang (or pass --cc with "
                             "a cross C compiler for the target)") from None
    return [sys.executable, "-m", "ziglang"]


def toolchain_env() -> dict[str, str]:
    """The environment of compiler runs: C locale, zig's cache under the user's cache."""
    env = dict(os.environ, LC_ALL="C")
    if "ZIG_GLOBAL_CACHE_DIR" not in env:
        cache = zig_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        env["ZIG_GLOBAL_CACHE_DIR"] = str(cache)
        env.setdefault("ZIG_LOCAL_CACHE_DIR", str(cache))
    return env


def cpu_flags(target: Target, cpu: str | None) -> list[str]:
    """The -mcpu/-march flags for `cpu` (None: the target's default) under its toolchain.
    For riscv64-rvv, `vlen=N` asks for a baseline rv64gcv core with VLEN >= N (Zvl<N>b)."""
    if target.toolchain != "zig":
        if not cpu:
            return list(target.cflags)
        if target.elf_machine == "x86_64":
            from .x86_64 import with_cpu
            return list(with_cpu(target, cpu).cflags)
        return [f"-march={cpu}"]
    cpu = cpu or target.cpu
    if cpu.startswith("vlen="):
        bits = cpu[len("vlen="):]
        if not bits.isdigit() or int(bits) < 128 or int(bits) & (int(bits) - 1):
            raise ToolchainError(f"--cpu {cpu}: vlen must be a power of two >= 128")
        cpu = f"{target.cpu}+zvl{bits}b"
    name, plus, features = cpu.partition("+")
    return [f"-mcpu={name.replace('-', '_')}{plus}{features}"]   # zig spells cortex_a76


def checked_features(target: Target, cc: str | None, cpu: str | None) -> tuple:
    """The instruction sets the code built for `cpu` may use that session creation checks
    (CpuidFeature rows): on x86-64, those whose ISA macro the compiler predefines for its
    flags (targets/x86_64.py, CPUID_FEATURES); elsewhere none."""
    if target.elf_machine != "x86_64":
        return ()
    from .x86_64 import CPUID_FEATURES
    command = [*compiler_command(target, cc, cpu), "-dM", "-E", "-x", "c", os.devnull]
    result = subprocess.run(command, capture_output=True, text=True, env=toolchain_env())
    if result.returncode != 0:
        raise ToolchainError(f"the C compiler cannot preprocess for --cpu {cpu}: "
                             f"{result.stderr.strip()[:300]}")
    defined = {line.split()[1] for line in result.stdout.splitlines()
               if line.startswith("#define ")}
    return tuple(f for f in CPUID_FEATURES if f.macro in defined)


def compiler_command(target: Target, cc: str | None = None, cpu: str | None = None) -> list[str]:
    """The compiler and its target flags: `cc` if given (a system or cross compiler; "zig":
    zig cc, for the host too), else zig cc for zig targets and the system cc for the host."""
    if cc == "zig":                          # zig cc for any target, the host's too
        zig_target = target.zig_target or f"{target.triple}.2.36"
        flags = cpu_flags(target, cpu) if target.toolchain == "zig" else [
            f"-mcpu={(cpu or 'native').replace('-', '_')}"]
        return [*zig_command(), "cc", "-target", zig_target, *flags]
    if cc and target.toolchain == "zig":     # a cross compiler of the user's: its defaults
        return [find_cc(cc)] + ([f"-mcpu={cpu}"] if cpu else [])
    if cc:
        return [find_cc(cc), *cpu_flags(target, cpu)]
    if target.toolchain == "zig":
        return [*zig_command(), "cc", "-target", target.zig_target, *cpu_flags(target, cpu)]
    return [find_cc(None), *cpu_flags(target, cpu)]


def run_compiler(command: Sequence[str], workdir: Path, what: str,
                 target: Target | None = None) -> None:
    """Run a compiler command in `workdir`; ToolchainError with its output on failure."""
    result = subprocess.run(list(map(str, command)), cwd=workdir, capture_output=True,
                            text=True, env=toolchain_env())
    if result.returncode != 0:
        log = (result.stderr or result.stdout).strip().splitlines()
        unknown = [line for line in log if line.startswith("error: unknown CPU")]
        if target is not None and unknown:
            raise ToolchainError(f"{unknown[0][len('error: '):]} for target {target.name}; "
                                 f"common cores: {', '.join(target.cpus)}")
        shown = "\n".join(log[:30])
        raise ToolchainError(f"the C compiler failed on {what} (a bug in Kiln; the sources "
                             f"are in {workdir}):\n{shown}")


@dataclass(frozen=True)
class BuildUnit:
    """Sources (relative to the work folder; C, assembly or objects) built for one CPU, with
    extra -D flags: an artifact of several CPU levels has one unit per level."""

    sources: tuple[str, ...]
    cpu: str | None = None
    defines: tuple[str, ...] = ()


def _compile_units(workdir: Path, units: Sequence[BuildUnit], target: Target,
                   runtime: RuntimeBuild, cc: str | None, extra_flags: Sequence[str]
                   ) -> list[str]:
    """Compile the runtime's sources for the target's baseline CPU and each unit for its
    CPU; the object files, relative to `workdir` (a unit's own objects included)."""
    baseline = [*compiler_command(target, cc, target.baseline_cpu or None), *BASE_CFLAGS,
                *extra_flags, *runtime.cflags, "-c"]
    objects = []
    for source in runtime.sources:
        objects.append(f"runtime_{Path(source).stem}.o")
        run_compiler([*baseline, str(source), "-o", objects[-1]], workdir, "the runtime",
                     target)
    for unit in units:
        compile_unit = [*compiler_command(target, cc, unit.cpu), *BASE_CFLAGS, *extra_flags,
                        *runtime.cflags, *unit.defines, f"-Wa,-I{workdir}", "-c"]
        for source in unit.sources:
            if source.endswith(".o"):
                objects.append(source)
                continue
            objects.append(f"{Path(source).stem}.o")
            run_compiler([*compile_unit, source, "-o", objects[-1]], workdir,
                         "generated code", target)
    return objects


def build_shared(workdir: Path, units: Sequence[BuildUnit], output: Path, target: Target,
                 runtime: RuntimeBuild, cc: str | None = None,
                 extra_flags: Sequence[str] = ()) -> None:
    """Compile each unit for its CPU, and the runtime's sources for the target's baseline
    CPU (so that session creation runs on any CPU of the architecture and can refuse one
    that lacks what the units use), into the shared library `output`. A compiler failure is
    a Kiln bug: the error carries the compiler's words."""
    if len(units) == 1 and not units[0].defines:   # one compiler run builds and links it
        objects = _compile_units(workdir, (), target, runtime, cc, extra_flags)
        unit = units[0]
        command = [*compiler_command(target, cc, unit.cpu), *BASE_CFLAGS, *extra_flags,
                   *runtime.cflags, f"-Wa,-I{workdir}", *unit.sources, *objects,
                   "-o", str(output), *runtime.ldflags]
        run_compiler(command, workdir, "generated code", target)
        return
    objects = _compile_units(workdir, units, target, runtime, cc, extra_flags)
    link = [*compiler_command(target, cc, target.baseline_cpu or None), *extra_flags,
            *objects, "-o", str(output), *runtime.ldflags]
    run_compiler(link, workdir, "the link", target)


def archiver_command(target: Target, cc: str | None = None) -> list[str]:
    """The archiver of the target's toolchain: zig's (llvm-ar, any architecture) for zig
    targets and zig cc, else the system `ar` (gcc-ar when only that is installed)."""
    if cc == "zig" or target.toolchain == "zig":
        return [*zig_command(), "ar"]
    for name in ("ar", "gcc-ar"):
        path = shutil.which(name)
        if path:
            return [path]
    raise ToolchainError("no archiver found for the static library (tried ar, gcc-ar); "
                         "install binutils (apt-get install binutils) or write a .so")


def build_static(workdir: Path, units: Sequence[BuildUnit], output: Path, target: Target,
                 runtime: RuntimeBuild, prefix: str, cc: str | None = None,
                 extra_flags: Sequence[str] = ()) -> list[str]:
    """Build the static library `output`: the objects of build_shared, merged by `ld -r`
    into one relocatable object whose hidden symbols are then made local (elf_localize: two
    models in one program cannot clash), archived with the target's archiver. Every global
    it defines must be `prefix`'s C API (checked: anything else is a Kiln bug). Returns the
    symbols it needs from outside (libc, libm, libpthread, the compiler's runtime)."""
    from .elf_localize import defined_globals, localize_hidden

    clang = cc == "zig" or (not cc and target.toolchain == "zig") or \
        (cc is not None and "clang" in Path(cc).name)
    if clang:   # clang's address-significance table names symbols by index: left out
        extra_flags = (*extra_flags, "-fno-addrsig")
    objects = _compile_units(workdir, units, target, runtime, cc, extra_flags)
    merged = workdir / "model_merged.o"
    run_compiler([*compiler_command(target, cc, target.baseline_cpu or None), "-r",
                  "-nostdlib", *objects, "-o", str(merged)], workdir, "the merge (ld -r)",
                 target)
    localize_hidden(merged)
    defined, undefined = defined_globals(merged)
    stray = [name for name in defined if not name.startswith(prefix)]
    if stray:
        raise ToolchainError(f"the static library would define {', '.join(sorted(stray))} "
                             f"beside the {prefix}* C API (a bug in Kiln: an internal symbol "
                             f"that is neither prefixed nor hidden)")
    output.unlink(missing_ok=True)
    archive = [*archiver_command(target, cc), "rcs", str(output), str(merged)]
    result = subprocess.run(archive, cwd=workdir, capture_output=True, text=True,
                            env=toolchain_env())
    if result.returncode != 0:
        raise ToolchainError(f"the archiver failed on {output}: "
                             f"{(result.stderr or result.stdout).strip()[:500]}")
    return undefined
