"""The `tunelab` command line. Imports stay lazy so `tunelab --help` is instant."""
