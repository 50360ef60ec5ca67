# Entry point of the virtual board, run by the host bridge as:
#   micropython -X heapsize=N -i poweron.py STATE_DIR RESET_CAUSE SPEED [SEED]
# -i leaves the real unix-port REPL (with raw REPL and raw-paste) running after main.py, so
# mpremote talks to it exactly as to a Pico.
import sys

sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])
import simrom  # noqa: E402  (imports the whole ROM while the host directory is still mounted)

simrom.power_on(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 1)
simrom.run_flash_scripts()
