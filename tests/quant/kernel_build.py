"""Compiling the quantized test models for one integer kernel, and what they ran on."""

from __future__ import annotations

from kiln.driver import compile_detailed
from kiln.runtime.manifest import read_manifest
from kiln.targets.x86_64 import host_features

VNNI = "avx512_vnni" in host_features()
#: kernel -> the --cpu that selects it (x86-64-v4 has AVX-512 but no VNNI)
KERNELS = {"int8_gemm_vnni": "native", "portable": "x86-64-v4"}
PORTABLE = {"qmatmul_loops", "qconv_direct"}


def compile_for(tmp_path, model, kernel: str, **options):
    """(compile result, the set of kernels its manifest records) for `kernel`'s --cpu."""
    result = compile_detailed(model, output=str(tmp_path / "model.so"), cpu=KERNELS[kernel],
                              keep_sources=str(tmp_path / "src"), verify=True, **options)
    return result, kernels_of(result.library)


def kernels_of(library) -> set[str]:
    """Every kernel the artifact's manifest records, over its CPU levels."""
    manifest = read_manifest(str(library))
    return {g["kernel"] for level in manifest["levels"] for g in level["schedules"]}
