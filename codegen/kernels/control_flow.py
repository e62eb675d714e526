"""The kernels of loops run by the run function (lower/control_flow.py)."""

from __future__ import annotations

from ..lower.control_flow import (lower_loop_buffer, lower_loop_copy, lower_loop_write,
                                  lower_nothing)
from .loops import loops, unscheduled

loops("loop_copy_loops", ("loop_carry", "loop_next", "loop_result"),
      "a loop state's first and next values, a loop's results after it", lower_loop_copy)
loops("loop_buffer_loops", ("loop_buffer",), "a scan output's buffer, zeroed",
      lower_loop_buffer)
loops("loop_write_loops", ("loop_write",), "one iteration's slice of a scan output",
      lower_loop_write)
unscheduled("loop_control", ("loop_begin", "loop_end", "if_begin", "if_else", "if_end"),
            "no kernel: the run function's loop over the body's kernels, or its if / else "
            "around a branch's", lower_nothing)
