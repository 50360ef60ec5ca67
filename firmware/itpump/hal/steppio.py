# The stepper's PIO program, alone in this module because rp2.asm_pio injects the PIO DSL names
# (pull, mov, x, ...) while it runs the function: ruff and mypy see them only through the import below.
# ruff: noqa: F403, F405
import rp2

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rp2.asm_pio import *

# Per move the driver puts two words: steps (>= 1), then the half-period loop count D. The SM emits
# exactly `steps` pulses on the side-set pin (STEP) and pushes the low 24 bits of Y, a pulse counter
# that counts down from ~0 over the SM's life and is decremented on the very cycle that raises STEP
# (drivers step on the rising edge). The driver takes differences of successive counter values, so a
# move stopped half-way still reports every edge it made (stepper.stop() reads Y with exec'd
# instructions) and no reading can be counted twice.
# Every instruction carries .side(): no optional side-set bit, STEP is driven on every cycle.
# Timing, in SM cycles: STEP high D + 5, low D + 5, period 2 * D + 10.


@rp2.asm_pio(sideset_init=rp2.PIO.OUT_LOW)
def step_program():
    mov(y, invert(null)).side(0)  # runs once per (re)start of the SM, outside the wrap loop
    wrap_target()
    pull(block).side(0)  # steps to emit
    mov(isr, osr).side(0)  # ISR keeps the steps still to emit
    pull(block).side(0)  # OSR keeps D
    label("step")
    mov(x, isr).side(0)
    jmp(not_x, "done").side(0)
    jmp(y_dec, "high").side(1)  # rising edge, counted on the same cycle
    label("high")
    jmp(x_dec, "keep").side(1)  # x != 0 here; both ways lead to keep
    label("keep")
    mov(isr, x).side(1)
    mov(x, osr).side(1)
    label("hold_high")
    jmp(x_dec, "hold_high").side(1)
    mov(x, osr).side(0)  # falling edge
    label("hold_low")
    jmp(x_dec, "hold_low").side(0)
    jmp("step").side(0)
    label("done")
    in_(y, 24).side(0)  # ISR is 0 here; shift in the counter's low 24 bits
    push(block).side(0)
    wrap()
