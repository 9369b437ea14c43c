"""Data sets, conversation type, templates, encoding and packing."""
