# Drivers shared by real boards (rp2). Only modules under hal/ may import machine/rp2.
