"""Integrations with training frameworks. Each is an optional dependency, imported only when its module
is: ``from neuroreg.integrations.lightning import RegularizationCallback`` needs ``neuroreg[lightning]``."""
