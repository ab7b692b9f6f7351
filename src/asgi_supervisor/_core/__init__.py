"""The asyncio shutdown core: the deadline, cancelling within it, and what is tracked.

Standard library only, and no other part of the package: everything here can be read, and
tested, as plain asyncio. The layers above give it a clock-free world of tasks, events and
deadlines; it gives them the lifecycle (`lifecycle`), the registry of tracked work
(`registry`, `requests`), workers with restart policies (`workers`), readiness checks
(`checks`), the one deadline of a shutdown (`deadline`), cancellation that keeps it
(`cancel`), where a task waits (`stacks`), the one rule for "drained" (`drain_outcome`) and
the report (`report`).
"""
