"""When a Prefect task retries: on operating-system errors only.

A full disk or a flaky network mount may pass; a malformed file, a bad configuration or a budget
refusal will not, and retrying them only delays the message the operator needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect import Task
    from prefect.client.schemas.objects import State, TaskRun

IO_RETRIES = 2
IO_RETRY_DELAYS = [10.0, 60.0]


def os_error_only(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """A ``retry_condition_fn``: retry only if the task failed with an :class:`OSError`."""
    del task, task_run
    error = state.result(raise_on_failure=False)
    return isinstance(error, OSError)
