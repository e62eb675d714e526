"""Run sanitized artifacts (built with `kiln compile --sanitize`) in a process that has the
sanitizer runtime preloaded. For each NAME.so in FOLDER it reads NAME.in.pkl (the feed),
runs the model twice and writes NAME.out.pkl; a sanitizer report aborts the process (the
builds do not recover), so the caller requires exit status 0 and no report on stderr.

    LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \\
        python tests/hardening/sanitized_run.py FOLDER
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

#: What a sanitizer prints when it finds something.
REPORT_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                  "SUMMARY: AddressSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


def sanitizer_env(cc: str = "gcc") -> dict[str, str] | None:
    """The environment a child needs to load sanitized artifacts, or None without libasan."""
    try:
        lib = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    if not os.path.isabs(lib) or not os.path.exists(lib):
        return None
    return dict(os.environ, LD_PRELOAD=lib, ASAN_OPTIONS="detect_leaks=0",
                UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")


def run_folder(folder: Path, threads: int = 2) -> int:
    """Run every artifact in `folder`; returns how many ran."""
    from kiln.runtime import load

    count = 0
    for library in sorted(folder.glob("*.so")):
        stem = library.name[:-len(".so")]
        feed = pickle.loads((folder / f"{stem}.in.pkl").read_bytes())
        with load(library, threads=threads) as session:
            session.run(feed)
            outputs = session.run(feed)   # twice: the arena is reused
        (folder / f"{stem}.out.pkl").write_bytes(pickle.dumps(outputs))
        count += 1
    return count


if __name__ == "__main__":
    print(f"ran {run_folder(Path(sys.argv[1]))} artifacts")
