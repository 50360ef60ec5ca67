# Runs at boot on the board (and on the virtual board). Keep it tiny: build the board, run the app.
import board

from itpump import app

app.main(board.build())
