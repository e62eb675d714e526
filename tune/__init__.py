"""Autotuning (`kiln tune`): kernel schedules searched on the real machine, written as
records that `kiln compile --tuning` replays (tuner.py; the record format is in
codegen/kernels/tuning_records.py)."""

from .tuner import Progress, TuneError, TuneResult, tune  # noqa: F401
