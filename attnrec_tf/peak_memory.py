"""This process's peak resident memory, per phase of a run (prepare, train, export).

Linux keeps a high-water mark of resident memory per process image (`VmHWM` in
`/proc/self/status`) and resets it when `5` is written to `/proc/self/clear_refs`. The mark is
read there rather than from `getrusage`, whose `ru_maxrss` also keeps the peak of the image
before an `exec` (`training.run` execs the export of a large catalog). Where `/proc` is
missing (not Linux), both fall back to `ru_maxrss`, a peak since the process started.
"""

from __future__ import annotations

STATUS = "/proc/self/status"
CLEAR_REFS = "/proc/self/clear_refs"


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB, since the last `reset_peak_rss` (if any)."""
    try:
        with open(STATUS, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Starts a new peak, so `peak_rss_mb` measures the next phase alone.

    Where `/proc/self/clear_refs` cannot be written, nothing changes and the peaks stay
    cumulative.
    """
    try:
        with open(CLEAR_REFS, "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        pass
