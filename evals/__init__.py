"""thinkgate evals: datasets, graders, live and replay runs, metrics and reports.

Import the submodules directly (``evals.datasets``, ``evals.graders``,
``evals.runner``, ``evals.sweep``, ``evals.replay``, ``evals.metrics``,
``evals.report``); this package itself imports nothing heavy.
"""

__all__ = ["cli", "datasets", "graders", "metrics", "replay", "report", "runner", "strategies", "sweep"]
