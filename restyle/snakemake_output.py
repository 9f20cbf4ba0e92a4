"""One line per finished job on the terminal, instead of Snakemake's job blocks.

Snakemake prints a block of ten to fifteen lines for every job it starts (rule, input,
output, log, reason, wildcards, resources...) and three more when it ends: some 850 lines
for the 45 jobs of the demo.  Its own switches cannot reduce that to one line per job:
``--quiet rules`` also hides the error report of a failed job (its rule and log path), and
a dry run's list of jobs; ``--quiet progress`` hides the progress.  :func:`one_line_per_job`,
called from the Snakefile, changes only what the terminal shows, only in the main process of
a real run::

    [22:12:33] 12 of 45 steps (27%) done: synthesize_gap (video=demo, gap=00000-00010) in 15 s

The scheduler's "Select jobs to execute..." and the "Removing temporary output ..." of each
gap go too.  Everything else is left as it is: errors (``Error in rule ...`` with the log path, and the
log itself with ``--show-failed-logs``), warnings, the job counts before the run, cluster
submissions, and the complete log in ``.snakemake/log/``, which keeps every job block.  A dry
run (``-n``) still lists the jobs.  ``--verbose``, any ``--quiet``, a logger plugin that writes
to the terminal, or ``RESTYLE_JOB_BLOCKS=1`` in the environment keep Snakemake's output
unchanged.
"""

from __future__ import annotations

import logging
import os
import threading
import time

__all__ = ["one_line_per_job"]

log = logging.getLogger("restyle")

# Plain messages, one or more per job, that say nothing new once jobs are one line each.
_CHATTER = ("Select jobs to execute...", "Removing temporary output ")


def _event_names():
    from snakemake_interface_logger_plugins.common import LogEvent

    hidden = {LogEvent.JOB_INFO, LogEvent.GROUP_INFO, LogEvent.SHELLCMD, LogEvent.JOB_STARTED,
              LogEvent.WORKFLOW_STARTED}
    return LogEvent, hidden


def _describe(wildcards) -> str:
    try:
        items = dict(wildcards or {}).items()
    except (TypeError, ValueError):
        return ""
    return ", ".join(f"{k}={v}" for k, v in items)


def _seconds(duration: float) -> str:
    if duration < 60:
        return f"{duration:.0f} s"
    minutes, seconds = divmod(int(round(duration)), 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class _JobLines(logging.Filter):
    """Drops the job blocks from one handler and turns each progress message into one line
    per job finished since the previous one.  Other records pass unchanged."""

    def __init__(self, formatter: logging.Formatter | None):
        super().__init__()
        self.LogEvent, self.hidden = _event_names()
        self.original = formatter
        self.started: dict[int, tuple[str, str, float]] = {}  # jobid -> rule, wildcards, time
        self.finished: list[tuple[int, str, float]] = []      # since the last progress message
        self.guard = threading.Lock()

    # logging.Filter
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            event = getattr(record, "event", None)
            if event == self.LogEvent.JOB_INFO:
                with self.guard:
                    self.started[record.jobid] = (record.rule_name, _describe(record.wildcards),
                                                  record.created)
            elif event == self.LogEvent.JOB_FINISHED:
                with self.guard:
                    self.finished.append((record.job_id, str(record.msg), record.created))
                return False
            if event in self.hidden:
                return False
            if (event is None and record.levelno == logging.INFO and isinstance(record.msg, str)
                    and record.msg.startswith(_CHATTER)):
                return False
        except Exception:  # noqa: BLE001 - never lose a message over the format
            return True
        return True

    # used as the handler's formatter
    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "event", None) == self.LogEvent.PROGRESS:
            try:
                return self._progress_lines(record)
            except Exception:  # noqa: BLE001
                pass
        return self.original.format(record) if self.original is not None else record.getMessage()

    def _progress_lines(self, record: logging.LogRecord) -> str:
        with self.guard:
            finished, self.finished = self.finished, []
            started = [self.started.pop(jobid, (None, "", None)) for jobid, _, _ in finished]
        done, total = int(record.done), int(record.total)
        if not finished:  # a progress message of its own: Snakemake's format
            if self.original is not None:
                return self.original.format(record)
            return f"{done} of {total} steps done"
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        lines = []
        for i, ((jobid, message, ended), (rule, wildcards, began)) in enumerate(zip(finished, started)):
            count = done - len(finished) + 1 + i
            percent = f"{100 * count / total:.0f}%" if total else "100%"
            if rule is None:  # "Finished jobid: 3 (Rule: name)"
                rule = message.rsplit("Rule: ", 1)[-1].rstrip(")") if "Rule: " in message else f"job {jobid}"
            what = f"{rule} ({wildcards})" if wildcards else rule
            took = f" in {_seconds(ended - began)}" if began is not None else ""
            lines.append(f"[{stamp}] {count} of {total} steps ({percent}) done: {what}{took}")
        return "\n".join(lines)


def one_line_per_job(workflow) -> bool:
    """Show one line per finished job on the terminal (see the module docstring).  Call it
    from the Snakefile; returns whether the terminal output was changed."""
    try:
        from snakemake.logging import logger

        settings = workflow.output_settings
        main_process = getattr(workflow, "is_main_process", None)
        if main_process is None:
            main_process = not (workflow.remote_exec or getattr(workflow, "subprocess_exec", False))
        # (workflow.dryrun is not known yet while the Snakefile is read; the settings are.)
        if (os.environ.get("RESTYLE_JOB_BLOCKS") or not main_process or settings is None
                or settings.dryrun or settings.verbose or settings.quiet or settings.debug_dag):
            return False
        handler = next((h for h in logger.handlers if h.name == "DefaultStreamHandler"), None)
        if handler is None or any(isinstance(f, _JobLines) for f in handler.filters):
            return False  # a logger plugin writes to the terminal, or already installed
        lines = _JobLines(handler.formatter)
        handler.addFilter(lines)
        handler.setFormatter(lines)
        return True
    except Exception as error:  # noqa: BLE001 - another Snakemake: keep its output as it is
        log.debug("keeping Snakemake's job blocks: %s", error)
        return False
