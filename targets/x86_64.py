"""x86-64 Linux: built with the system C compiler for the compiling host's CPU features."""

from .target import Target, register_target

X86_64 = register_target(Target(
    name="x86_64",
    triple="x86_64-linux-gnu",
    elf_machine="x86_64",
    vector_bits=512,
    cflags=("-march=native",),
    aliases=("x86-64", "amd64"),
    description="x86-64 Linux, AVX2/AVX-512 as the compiling host has them",
    host_machines=("x86_64", "AMD64"),
))
