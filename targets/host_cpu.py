"""Which CPU this process runs on, as tuning records name it.

A tuned schedule is a measurement of one CPU: the same target name and vector width cover
machines whose caches, core counts and microarchitectures differ. `host_cpu()` names the
host by what /proc/cpuinfo says of its first core (vendor, model name, family, model and
stepping) and by its vector instruction sets, so records made on one machine are
recognised there and ignored, with a note, elsewhere.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

#: The flags that change which kernels and schedules are fast (and which ones run at all).
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                "avx512_vnni", "avx512_bf16", "asimd", "asimddp", "sve")


def host_cpu() -> str:
    """A one-line name of this host's CPU, e.g. 'AuthenticAMD AMD EPYC (26/2/1) avx2
    avx512f ... #1a2b3c4d'; the trailing hash covers every line of the first core."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break                      # the first core's block ends
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    vendor = fields.get("vendor_id") or fields.get("CPU implementer") or platform.machine()
    name = fields.get("model name") or fields.get("CPU part") or platform.processor() or "?"
    numbers = "/".join(fields.get(k, "?") for k in ("cpu family", "model", "stepping"))
    shown = " ".join(f for f in VECTOR_FLAGS if f in flags)
    stable = {k: v for k, v in fields.items()
              if k not in ("processor", "core id", "apicid", "initial apicid", "cpu MHz",
                           "bogomips", "BogoMIPS", "siblings", "cpu cores")}
    digest = hashlib.sha256(repr(sorted(stable.items())).encode()).hexdigest()[:8]
    return f"{vendor} {name} ({numbers}) {shown} #{digest}".replace("  ", " ")
