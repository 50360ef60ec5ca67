"""pumpctl: host tools for the itpump firmware (flash, program, status, logs, virtual board)."""

from pathlib import Path

__version__ = "0.1.0"

# Source tree the tools run from (editable install): firmware/ and boards/ are flashed from here.
REPO_ROOT = Path(__file__).resolve().parents[2]


class PumpctlError(Exception):
    """An error for the user: printed as one line by the CLI, never as a traceback."""
