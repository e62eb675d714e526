"""The LLVM IR renderer's module level: a module of kernels for a target, optimized at O3 and
emitted as an object file in process (llvmlite), ready for zig cc or cc to link."""

from __future__ import annotations

import threading
from pathlib import Path

from llvmlite import binding as llvm
from llvmlite import ir

from ..compiler.errors import ToolchainError
from . import kernel_ir as K
from .llvm_renderer import KernelBuilder

_INIT = threading.Lock()
_initialized = False


def render_module(kernels: list[K.Kernel], triple: str, name: str = "kiln_kernels") -> ir.Module:
    """An LLVM module defining every kernel (hidden, kiln_task_fn signature)."""
    module = ir.Module(name=name)
    module.triple = triple
    weights = ir.GlobalVariable(module, ir.ArrayType(ir.IntType(8), 0), "kiln_weights")
    weights.linkage = "external"
    weights.visibility = "hidden"
    weights.global_constant = True
    for kernel in kernels:
        builder = KernelBuilder(module, kernel, weights)
        builder.finish(kernel)
    return module


def write_object(kernels: list[K.Kernel], target, workdir: Path, cpu: str | None = None) -> str:
    """Render `kernels` for `target`, optimize at O3 and write workdir/kernels.o; returns its
    name (relative to workdir) for the link."""
    module = render_module(kernels, target_triple(target))
    (workdir / "kernels.ll").write_text(str(module))
    (workdir / "kernels.o").write_bytes(emit_object(str(module), target, cpu))
    return "kernels.o"


def target_triple(target) -> str:
    """The LLVM triple of `target`."""
    return target.llvm_triple or target.triple.replace("-linux-gnu", "-unknown-linux-gnu")


def _initialize() -> None:
    global _initialized
    with _INIT:
        if not _initialized:
            llvm.initialize_all_targets()
            llvm.initialize_all_asmprinters()
            _initialized = True


def machine_spec(target, cpu: str | None) -> tuple[str, str, str]:
    """(LLVM cpu, features, ABI name) for `target` and the user's --cpu (None: default)."""
    features = target.llvm_features
    if target.toolchain != "zig":                       # the host: its CPU unless told
        if cpu in (None, "native"):
            return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten(), ""
        return cpu, "", ""
    llvm_cpu = target.llvm_cpu
    if cpu and cpu.startswith("vlen="):
        features += f",+zvl{cpu[len('vlen='):]}b"
    elif cpu and cpu != target.cpu:
        llvm_cpu = cpu.replace("_", "-")
    abi = "lp64d" if target.elf_machine == "riscv64" else ""
    return llvm_cpu, features, abi


def emit_object(llvm_ir: str, target, cpu: str | None = None) -> bytes:
    """Parse, verify, optimize (O3, loop and SLP vectorizers) and compile `llvm_ir` to an
    object file for `target`."""
    _initialize()
    triple = target_triple(target)
    llvm_cpu, features, abi = machine_spec(target, cpu)
    try:
        module = llvm.parse_assembly(llvm_ir)
        module.verify()
    except RuntimeError as exc:
        raise ToolchainError(f"the LLVM renderer produced invalid IR (a bug in Kiln): "
                             f"{exc}") from None
    try:
        machine = llvm.Target.from_triple(triple).create_target_machine(
            cpu=llvm_cpu, features=features, opt=3, reloc="pic", codemodel="default",
            abiname=abi)
    except RuntimeError as exc:
        raise ToolchainError(f"LLVM cannot build for {triple} (cpu {llvm_cpu}): {exc}") from None
    module.triple = triple
    module.data_layout = str(machine.target_data)
    options = llvm.PipelineTuningOptions(speed_level=3)
    options.loop_vectorization = True
    options.slp_vectorization = True
    options.loop_unrolling = False   # 4x the compile time (8 s for SqueezeNet) for little gain
    builder = llvm.create_pass_builder(machine, options)
    builder.getModulePassManager().run(module, builder)
    return machine.emit_object(module)
