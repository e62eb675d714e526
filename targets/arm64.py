"""arm64 (AArch64) Linux with NEON: cross-built with zig cc, run here under qemu-aarch64."""

from .target import Target, register_target

ARM64 = register_target(Target(
    name="arm64",
    triple="aarch64-linux-gnu",
    elf_machine="aarch64",
    vector_bits=128,
    cflags=(),
    aliases=("aarch64",),
    description="AArch64 Linux (glibc 2.36+), NEON; built with zig cc",
    host_machines=("aarch64", "arm64"),
    toolchain="zig",
    zig_target="aarch64-linux-gnu.2.36",
    cpu="generic",
    cpus=("cortex-a53", "cortex-a72", "cortex-a76", "neoverse-n1", "neoverse-n2",
          "neoverse-v1", "apple-m1"),
    llvm_triple="aarch64-unknown-linux-gnu",
    llvm_cpu="generic",
    llvm_features="+neon,+fp-armv8",
    vector_isa="NEON",
    features=("neon", "fma"),              # every AArch64 core: NEON with fused multiply-add
    capabilities=frozenset({"vector"}),    # both renderers print the vector kernel IR
    l1d_bytes=64 * 1024,
    l2_bytes=512 * 1024,
    qemu="qemu-aarch64",
    qemu_sysroot="/usr/aarch64-linux-gnu",
))
