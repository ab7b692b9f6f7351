"""The supervisor: the public `Supervisor` facade, its `Config`, and what one lifespan
runs (`run`), above all its shutdown sequence (`shutdown`).
"""
