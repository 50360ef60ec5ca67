"""pumpctl: host tools for the itpump firmware (flash, program, status, logs, virtual board)."""

from pathlib import Path

__version__ = "0.1.0"

# Source tree the tools run from (editable install): firmware/ and boards/ are flashed from here.
REPO_ROOT = Path(__file__).resolve().parents[2]

# Exit codes (README: Exit codes). argparse exits 2 on a usage error itself.
EXIT_ERROR = 1  # anything else the user must fix (bad file, bad value, verify failed)
EXIT_USAGE = 2
EXIT_NO_BOARD = 3  # no port given and none found, or the port does not exist
EXIT_REFUSED = 4  # the board (or pumpctl for it) refused: therapy running, auth, bad arguments
EXIT_TIMEOUT = 5  # the board did not answer in time
EXIT_LINK = 6  # the serial link failed: busy, permission, read/write error
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


class PumpctlError(Exception):
    """An error for the user: printed as one line by the CLI, never as a traceback."""

    exit_code = EXIT_ERROR


class UsageError(PumpctlError):
    """A malformed or contradictory command line (argparse's own errors exit 2 too)."""

    exit_code = EXIT_USAGE


class NoBoardError(PumpctlError):
    exit_code = EXIT_NO_BOARD


class RefusedError(PumpctlError):
    exit_code = EXIT_REFUSED


class LinkError(PumpctlError):
    exit_code = EXIT_LINK


class Interrupted(PumpctlError):
    exit_code = EXIT_INTERRUPTED
