"""Kiln: an ahead-of-time compiler from ONNX models to self-contained shared libraries."""

from .compiler.errors import KilnError, UnsupportedModelError  # noqa: F401

__version__ = "0.1.0"


def compile(model, target: str = "host", output: str = "model.so", dims=None, shapes=None,
            **options) -> str:
    """Compile `model` (a path, bytes or onnx.ModelProto) for `target` into `output` and its
    header (`output` with .h); returns the library's path. `output` ends in .so (a shared
    library) or .a (a static one, linked with -pthread -lm); <stem>-config.cmake and
    <stem>.pc are written beside it for CMake and pkg-config.

    dims: symbolic dim -> size, e.g. {"batch": 1} (`--dim`); shapes: input -> its whole
    shape, e.g. {"x": (1, 3, 224, 224)} (`--shape`). The options, as on the command line:

    - consts: input -> a value fixed at compile time, e.g. {"sr": 16000} (`--const`)
    - prefix: the C symbols' prefix (default "kiln_"); cc: the C compiler ("zig" for zig cc)
    - cpu: a specific core of the target (e.g. "cortex-a76"); emit: "c" (default) or "llvm"
    - keep_sources: a folder to copy the generated C into; dump_ir_after: pass names whose
      IR to print; verify: run the IR and kernel verifiers; sanitize: build with ASan+UBSan
    - threads_max: the thread budget default schedules keep busy (default this host's cores)
    - schedule: a schedule file to replay; dump_schedule: where to write the ones chosen
    - tuning: a records file of `kiln tune` (or a list of them, merged): each kernel takes
      the best schedule measured on this machine at this thread count (`--tuning`)
    - log: a function that receives the IR dumps and one line per pass (time, node count)
    - progress: a function called with each stage's name as it starts (`kiln compile`
      shows them on one line when stderr is a terminal)
    - quantize: "int8" (static, calibrated) or "dynamic" (matmul activations quantized at
      run time) (`--quantize`); calibration: a .npz path or {input: array[N, ...]}, samples
      along the first axis (`--calibration`); calibrate: "minmax" (default), "percentile" or
      "entropy" (`--calibrate`); keep_float: ONNX node or output names left in float
      (`--keep-float`); quant_report: True (CompileResult.quant_report) or a JSON path
      (`--quant-report`): each quantized tensor's error against float on the samples

    An option not in this list raises a KilnError that names the options.
    """
    from .driver import compile_model

    return compile_model(model, target=target, output=output, dims=dims, shapes=shapes,
                         **options)
