# itpump firmware package. Pure logic lives here; hardware arrives through the board object.
VERSION = "0.1.0"
