# The Python runtime's entry point, started as
#   /usr/bin/python3 -I -S /opt/faas/runtimes/python/bootstrap.py
# The work is in faas_runtime.py: imported as a module, it is loaded from
# its precompiled __pycache__ (made at build time: the runtimes directory is
# read-only inside sandboxes) instead of being compiled at every start.
import sys

sys.path.insert(0, __file__.rpartition('/')[0] or '.')
import faas_runtime  # noqa: E402
del sys.path[0]

sys.exit(faas_runtime.main())
