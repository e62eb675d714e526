"""Tuning records: what `kiln tune` measured, and which schedule `--tuning` takes from them.

A records file is JSON lines, one measured candidate per line (docs/tuning.md):

    {"kiln_tuning": 1, "kiln": "0.1.0", "target": "x86_64", "cpu": "native",
     "vector_bits": 512, "machine": "AuthenticAMD AMD EPYC (25/17/1) ... #4682b864",
     "threads": 1, "kernel": "conv_nhwc_gemm", "schedule_format": "3f2a9c1d",
     "signature": {...}, "schedule": {"mr": 14, ...}, "status": "ok",
     "seconds": 0.00121, "default_seconds": 0.00150, "noise": 0.02,
     "groups": ["conv1_Conv"], "model": "resnet18", "reason": ""}

`signature` is the kernel decision's signature (select.py), so a record serves every model
with the same layer. `default_seconds` is the median time of the signature's groups under the default
schedule and `seconds` that times the median ratio of candidate to default over repeats
of one worker run that profiled the two artifacts in turn, so the ratio (the speedup)
carries little of the machine's noise; `noise` is that ratio's interquartile range over
its median. `schedule_format` fingerprints the kernel's schedule type
(its fields and their ranges): a record of a schedule type that has since changed is
stale. A failed candidate has status "crashed", "hung", "wrong" or "failed" and a reason.

`best_lines` picks, per signature, the measured candidate with the largest speedup above 1
(the least of its measurements: the tuner measures a winner again before it counts, and
once more beside the other signatures' winners)
among the records that apply to this compilation (same target, CPU level, vector width,
machine and thread count, current schedule format), as schedule-file lines; every record
that does not apply is counted in a note that says why.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from ..schedules import ScheduleError, fields, from_dict
from .registry import KERNELS, Kernel
from .select import line_key

RECORDS_VERSION = 1
#: The statuses of a candidate that did not give a timing, and what each means.
FAILURES = {"crashed": "the worker died running it", "hung": "it ran past the time limit",
            "wrong": "its outputs differ from the default schedule's",
            "failed": "it did not build or load"}
REQUIRED = ("kiln_tuning", "target", "cpu", "vector_bits", "machine", "threads", "kernel",
            "schedule_format", "signature", "schedule", "status")


def schedule_format(kernel: Kernel) -> str:
    """A fingerprint of the kernel's schedule type: its name, fields and ranges."""
    text = repr((kernel.schedule.__name__, fields(kernel.schedule)))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def read_records(paths: Iterable[str | Path]) -> list[tuple[str, dict[str, Any]]]:
    """(where, record) of every line of every file, in order; a file that cannot be read or
    a line that is not a JSON object with the record fields is an error naming the line."""
    records = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ScheduleError(f"cannot read the tuning records {path}: "
                                f"{error.strerror}") from None
        for number, raw in enumerate(text.splitlines(), 1):
            if not raw.strip():
                continue
            where = f"line {number} of {path}"
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as error:
                raise ScheduleError(f"{where}: not JSON ({error.msg}); tuning records are "
                                    f"the JSON lines `kiln tune -o` writes") from None
            if not isinstance(record, dict):
                raise ScheduleError(f"{where}: a tuning record is a JSON object")
            missing = [f for f in REQUIRED if f not in record]
            if missing:
                raise ScheduleError(f"{where}: not a tuning record (missing "
                                    f"{', '.join(missing)}); `kiln tune -o` writes them")
            records.append((where, record))
    return records


def speedup(record: dict[str, Any]) -> float:
    """default_seconds / seconds of a measured candidate; 0 for a failed one."""
    seconds, default = record.get("seconds"), record.get("default_seconds")
    if record.get("status") != "ok" or not seconds or not default:
        return 0.0
    return float(default) / float(seconds)


def why_not(record: dict[str, Any], target: str, cpu: str, vector_bits: int,
            machine: str | None, threads: int) -> str | None:
    """Why a record does not apply to this compilation (None: it does)."""
    if record["kiln_tuning"] != RECORDS_VERSION:
        return f"records of format {record['kiln_tuning']} (this Kiln reads {RECORDS_VERSION})"
    if record["target"] != target:
        return f"tuned for target {record['target']}"
    if record["cpu"] != cpu or record["vector_bits"] != vector_bits:
        return f"tuned for --cpu {record['cpu']} ({record['vector_bits']}-bit vectors)"
    if machine is not None and record["machine"] != machine:
        return f"measured on another CPU ({record['machine']})"
    if record["threads"] != threads:
        return f"measured at {record['threads']} threads"
    kernel = KERNELS.get(record["kernel"])
    if kernel is None:
        return f"kernel {record['kernel']} no longer exists"
    if record["schedule_format"] != schedule_format(kernel):
        return f"an older schedule format of {kernel.name}"
    return None


def best_lines(records: list[tuple[str, dict[str, Any]]], target: str, cpu: str,
               vector_bits: int, machine: str | None, threads: int
               ) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """The schedule-file lines of the best candidate per signature, and the notes on the
    records left out. `machine` None: the artifact runs elsewhere (a cross target), and any
    machine's records apply."""
    gains: dict[tuple[str, str, str], tuple[str, dict[str, Any], list[float]]] = {}
    ignored: Counter[str] = Counter()
    for where, record in records:
        reason = why_not(record, target, cpu, vector_bits, machine, threads)
        if reason is not None:
            ignored[reason] += 1
            continue
        gain = speedup(record)
        if gain <= 0.0:
            continue
        try:
            from_dict(KERNELS[record["kernel"]].schedule, record["schedule"], where)
        except ScheduleError as error:
            ignored[f"a schedule out of range ({error})"] += 1
            continue
        line = {"group": ",".join(record.get("groups") or []), "kernel": record["kernel"],
                "target": record["target"], "cpu": record["cpu"],
                "vector_bits": record["vector_bits"], "signature": record["signature"],
                "schedule": record["schedule"]}
        candidate = (line_key(line), record["kernel"],
                     json.dumps(record["schedule"], sort_keys=True))
        gains.setdefault(candidate, (where, line, []))[2].append(gain)
    best: dict[str, tuple[float, str, dict[str, Any]]] = {}
    for (key, _, _), (where, line, measured) in gains.items():
        gain = min(measured)
        if gain > 1.0 and (key not in best or gain > best[key][0]):
            best[key] = (gain, f"the tuning record at {where}", line)
    notes = [f"ignored {count} tuning record{'s' if count > 1 else ''}: {reason}"
             for reason, count in sorted(ignored.items())]
    return [(where, line) for _, where, line in best.values()], notes
