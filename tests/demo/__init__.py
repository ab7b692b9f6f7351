"""Tests of the demo service (`app/`) and its deployment files (`docker/`, `compose.yaml`)."""
