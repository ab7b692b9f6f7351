"""The process group: the worker processes of one server drain together.

`membership` holds the protocol (drain, hello, query, status) and `channel` the unix
datagram sockets it travels over, in the runtime folder. It knows nothing of admin access.
"""
