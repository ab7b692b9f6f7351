"""What the supervisor shows of itself: the rows of ``/tasks`` and its HTML page, and the
metrics. Read-only: nothing here changes the state it shows.
"""
