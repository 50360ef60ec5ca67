# itpump firmware package. Pure logic lives here; hardware arrives through the board object.
VERSION = "0.1.0"
# The package's modules (hal/ and app aside) in load order, dependencies first: app.py imports them in
# this order, bench/heap7d.py measures them, tests/firmware/test_modules.py checks the list against the
# folder that pumpctl flash and the frozen manifest ship.
MODULES = ("protocol", "alarms", "store", "auth", "eventlog", "drugs", "therapy", "dosing", "guard",
           "reservoir", "occlusion", "power", "rotor", "pump", "supervisor", "ops", "ops_therapy", "ops_bolus",
           "ops_admin")
