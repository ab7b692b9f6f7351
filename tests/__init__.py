"""The test suite. Its folders mirror the layers of ``src/asgi_supervisor/``::

    core/ host/ group/ admin/     one folder per private subpackage, one test module per
    supervisor/ observe/ asgi/    source module (``_core/deadline.py`` is pinned by
    cli/                          ``core/test_deadline.py``): unit tests, and in-process ASGI
                                  with the lifespan driven explicitly
    test_public_api.py            the public namespace
    servers/                      real server processes, real clients, real signals, on
                                  loopback (marked ``server``)
    demo/                         the demo service (``app/``) and its deployment files
    bench/                        the benchmarks, run small

A test imports the module it tests or the public API. Shared code lives in helpers, which test
modules import and never each other: ``apps.py`` (the tiny apps and workers, in-process and
under real servers), ``_inprocess.py`` (a quiet supervisor, clients, bounded waits),
``servers/_process.py`` and its siblings (server processes and what they report).
"""
