"""Facts about this host and process, and the threads that watch it.

What ``/proc`` says about our sockets and processes (`proc`, `tcp_table`, `listeners`), the
private runtime folder other processes of this user share with us (`runtime_dir`, placed by
`placement`) and the one
cross-process mechanism in it: a folder per listener (`listener_folder`), our membership
there (`presence`) and the messages between members (`channel`); the signal
chain in front of the server's handler (`signals`), the watchdog that ends a stuck process
(`watchdog`), loop-lag detection (`looplag`), what a server integration registered
(`server_facts`) and where our log records go (`logs`). Above the core, below everything
that supervises.
"""
