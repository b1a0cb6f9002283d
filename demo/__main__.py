"""``python -m demo``: the live self-healing demo (see demo.cli for its flags)."""
from .cli import main

main()
