"""pumpctl's command handlers, by subject (board, therapy, logs, clinic). Each takes the driver's State
(cli.py), does the work through the library and returns its result; show_* functions write what a
person reads from that result (with render.py). The table that names them all is cli.COMMANDS."""

DONE = object()  # a handler's result when it has written its output itself (web: a server)
