"""RISC-V 64 with the vector extension 1.0 (rv64gcv, the "VPU"): vector-length agnostic code
cross-built with zig cc; one artifact runs at any vlen (tested under qemu-riscv64)."""

from .target import Target, register_target

RISCV64_RVV = register_target(Target(
    name="riscv64-rvv",
    triple="riscv64-linux-gnu",
    elf_machine="riscv64",
    vector_bits=128,               # the minimum VLEN of RVV 1.0 (Zvl128b); code is VLA
    cflags=(),
    aliases=("vpu", "riscv64"),
    description="RISC-V rv64gcv Linux (glibc 2.36+), RVV 1.0 vector-length agnostic; "
                "built with zig cc",
    host_machines=("riscv64",),
    toolchain="zig",
    zig_target="riscv64-linux-gnu.2.36",
    cpu="baseline_rv64+v",
    cpus=("baseline_rv64+v", "sifive_x280", "spacemit_x60", "vlen=256", "vlen=512"),
    llvm_triple="riscv64-unknown-linux-gnu",
    llvm_cpu="generic-rv64",
    llvm_features="+m,+a,+f,+d,+c,+v",
    vector_isa="RVV 1.0",
    vector_length_agnostic=True,
    features=("v", "fma"),
    # no "vector" capability: fixed-width vector kernels would tie the artifact to one VLEN;
    # clang and LLVM vectorize the scalar loops length-agnostically (vsetvli) instead.
    l1d_bytes=32 * 1024,
    l2_bytes=512 * 1024,
    qemu="qemu-riscv64",
    qemu_sysroot="/usr/riscv64-linux-gnu",
    qemu_cpu="rv64,v=true,vlen={vlen},vext_spec=v1.0",
))
