"""The process group: the worker processes of one server drain together.

`membership` holds the protocol (drain, hello, and the status query), spoken over the
listener folder's channel (`_host.presence`, `_host.channel`). It knows nothing of admin
access.
"""
