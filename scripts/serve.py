"""Start a long-running command with default signal handling, so SIGTERM stops `dagster dev` cleanly.

A process started with `cmd &` from a non-interactive shell inherits SIGINT as ignored; Dagster routes
SIGTERM to its SIGINT handler, so without this wrapper the webserver and daemon would be orphaned.
"""

import os
import signal
import sys

signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])
