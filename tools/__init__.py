"""Developer tools (not installed with the package): ``python tools/mutate.py``."""
