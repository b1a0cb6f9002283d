"""``python -m actuator``: the same as ``autopilot-actuator``."""
from .cli import main

main(prog_name="autopilot-actuator")
