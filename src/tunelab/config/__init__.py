"""Typed argument groups and the YAML / key=value / --flag parser that fills them."""
