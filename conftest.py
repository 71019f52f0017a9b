"""Root pytest configuration: skip collecting optional integrations whose dependency is absent."""

import importlib.util

collect_ignore = []
if importlib.util.find_spec("lightning") is None and importlib.util.find_spec("pytorch_lightning") is None:
    collect_ignore.append("neuroreg/integrations/lightning.py")
