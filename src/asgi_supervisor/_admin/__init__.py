"""Admin access: the local token that proves a caller is this user on this host, and
who may call the admin endpoints. Standard library only: the command line shares it. The
token lives in the listener folder (`_host.presence`); it knows nothing of the process group.
"""
