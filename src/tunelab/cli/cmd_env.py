"""`tunelab env`: versions and devices in a form fit to paste into a bug report."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print("usage: tunelab env\n\nPrint python, library and device facts as markdown for a bug report.")
        return 0
    from tunelab.utils.env_report import environment_report

    print(environment_report())
    return 0
