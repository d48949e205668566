"""Orchestration and entry points: Prefect flows and tasks, and the ``mobility`` command line.

Flows and tasks are thin wrappers over functions in :mod:`aggregation`; single-shot commands call
:mod:`aggregation` directly. Modules:
    cli  -- the ``mobility`` command and its subcommands.
"""
