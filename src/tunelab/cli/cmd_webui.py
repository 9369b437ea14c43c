"""`tunelab webui [--host H] [--port P] [--share] [--saves DIR]`: the board that trains, evaluates, chats
and exports without code."""

from __future__ import annotations

import argparse

USAGE = """usage: tunelab webui [--host 127.0.0.1] [--port 7860] [--share] [--saves saves]

Open the web UI (tunelab board) at http://HOST:PORT. It binds 127.0.0.1 by default (this machine only);
--host 0.0.0.0 exposes it to the network. Runs are separate processes writing to folders under --saves,
so closing the page never stops them and reopening it finds them again. See docs/webui.md."""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tunelab webui", usage=USAGE, add_help=False)
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true")
    parser.add_argument("--saves", default="saves")
    args, rest = parser.parse_known_args(argv)
    if args.help:
        print(USAGE)
        return 0
    from tunelab.errors import UserError, require_package

    if rest:
        raise UserError(f"unknown option(s) {' '.join(rest)}; see `tunelab webui --help`")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port} is not a port number (0-65535)")
    require_package("gradio", "tunelab webui", extra="webui")
    from tunelab.webui.app import launch_board

    launch_board(args.host, args.port, args.share, saves_root=args.saves, block=True)
    return 0
