"""``python -m syncd.sandbox``: serve the sandbox in the foreground (what ``syncd sandbox`` runs)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from syncd.sandbox.sandbox import serve

DEFAULT_PORT = 8765


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m syncd.sandbox",
        description="Serve a Shutterstock-compatible API emulator on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (0 picks a free one)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated catalogue")
    parser.add_argument("--licenses", type=int, default=40, help="licenses in the history")
    parser.add_argument("--token", default="sandbox-token", help="the bearer token the API accepts")
    args = parser.parse_args(argv)
    serve(port=args.port, seed=args.seed, licenses=args.licenses, token=args.token)


if __name__ == "__main__":
    main()
