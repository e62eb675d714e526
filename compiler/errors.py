"""Errors a user can cause. Each is a KilnError with a message that says what to do."""

from __future__ import annotations

from dataclasses import dataclass


class KilnError(Exception):
    """Base of every error Kiln raises for a user's mistake or an unsupported model."""


class ModelLoadError(KilnError, ValueError):
    """The file is not a readable, valid ONNX model."""


class UnpinnedDimError(KilnError, ValueError):
    """A symbolic dimension of an input has no value; the user must pin it."""


class ShapeError(KilnError, ValueError):
    """Shapes in the model do not fit together, or an attribute is out of range."""


class ToolchainError(KilnError, RuntimeError):
    """The C toolchain failed to build generated code (a bug in Kiln) or is missing."""


class InputError(KilnError, ValueError):
    """An input given to a compiled model at run time has the wrong name, dtype or shape."""


class ArtifactError(KilnError, OSError):
    """A compiled artifact cannot be loaded: wrong architecture, ABI version or a broken file."""


class RuntimeFailure(KilnError, RuntimeError):
    """A call into a compiled artifact returned an error status."""


@dataclass(frozen=True)
class Problem:
    """One reason a model cannot be compiled, tied to the node that causes it."""

    node: str
    op_type: str
    domain: str
    opset: int
    reason: str
    hint: str = ""
    #: The graph inputs that, fixed at compile time (`--const NAME=VALUE`), would remove this
    #: problem (e.g. a Reshape whose shape is computed from them); empty when none would.
    consts: tuple[str, ...] = ()

    def __str__(self) -> str:
        domain = self.domain or "ai.onnx"
        text = f"node '{self.node}' ({domain}::{self.op_type}, opset {self.opset}): {self.reason}"
        return f"{text}; {self.hint}" if self.hint else text


class UnsupportedModelError(KilnError, NotImplementedError):
    """The model uses ops or attributes Kiln cannot compile; lists every problem at once."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = [f"the model cannot be compiled: {len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))
