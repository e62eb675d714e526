"""The accuracy report: each quantized tensor and each model output of the quantized model
against the float model on the calibration samples, as relative RMS error
(||q - f|| / ||f||) and cosine similarity, over all samples together, worst first."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

#: the rows the printed table shows (all of them go to the JSON file)
SHOWN = 10


@dataclass
class Row:
    """One compared tensor."""

    tensor: str
    kind: str                       # "activation" (read by `layers`) or "output"
    layers: list[str] = field(default_factory=list)
    scale: float | None = None
    zero_point: int | None = None
    rel_rms: float = 0.0
    cosine: float = 1.0


class Accuracy:
    """Sums over the samples of each tensor's float and quantized values."""

    def __init__(self, rows: Mapping[str, Row]) -> None:
        self.rows = dict(rows)
        self.sums = {name: np.zeros(4) for name in rows}   # ff, qq, qf, (q - f)^2

    def see(self, name: str, float_value: np.ndarray, quantized: np.ndarray) -> None:
        f = float_value.astype(np.float64).ravel()
        q = quantized.astype(np.float64).ravel()
        self.sums[name] += (f @ f, q @ q, q @ f, np.sum((q - f) ** 2))

    def finish(self) -> list[Row]:
        """The rows, worst (lowest cosine, then largest error) first."""
        for name, (ff, qq, qf, err) in self.sums.items():
            row = self.rows[name]
            row.rel_rms = float(np.sqrt(err / ff)) if ff > 0 else float(np.sqrt(err))
            row.cosine = float(qf / np.sqrt(ff * qq)) if ff > 0 and qq > 0 else \
                float(ff == qq)
        return sorted(self.rows.values(), key=lambda r: (r.cosine, -r.rel_rms))


def table(rows: list[Row], method: str, samples: int) -> str:
    """The short table compile prints: the worst SHOWN rows and how many there are."""
    lines = [f"quantization accuracy against float ({method} calibration, {samples} samples; "
             f"worst first):", f"  {'cosine':>8}  {'rel rms':>8}  tensor (read by)"]
    for row in rows[:SHOWN]:
        readers = f" ({', '.join(row.layers)})" if row.layers else " (model output)"
        lines.append(f"  {row.cosine:8.5f}  {row.rel_rms:8.4f}  {row.tensor}{readers}")
    activations = sum(r.kind == "activation" for r in rows)
    lines.append(f"  {len(rows)} tensors compared: {activations} quantized activations, "
                 f"{len(rows) - activations} model outputs"
                 + (f"; {len(rows) - SHOWN} more in --quant-report" if len(rows) > SHOWN
                    else ""))
    return "\n".join(lines)


def write_json(path: str | Path, rows: list[Row], method: str, samples: int) -> None:
    Path(path).write_text(json.dumps({"calibrate": method, "samples": samples,
                                      "rows": [asdict(r) for r in rows]}, indent=1) + "\n")
