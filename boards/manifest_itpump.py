# What itpump freezes into a MicroPython image, shared by the rp2 boards' manifests.
# Included by boards/<board>/manifest.py with options.board naming that board's folder.
# Relative paths are resolved from this file's folder (boards/).
options.defaults(board=None)

# The firmware package at opt=3: no line numbers or asserts, the smallest bytecode.
package("itpump", base_path="../firmware", opt=3)
# The board file becomes the `board` module; main.py runs at boot (a frozen main.py is preferred
# to a /main.py on the filesystem).
module("board.py", base_path=options.board)
module("main.py", base_path="../firmware")
