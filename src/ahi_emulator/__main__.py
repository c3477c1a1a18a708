"""``python -m ahi_emulator``: serve local-store datastores over AHI's API."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from .app import create_app
from .faults import Faults, parse_fault_flag


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ahi_emulator",
        description="Serve the datastores of a dicomweb-proxy data folder (store/<32-hex id>/) "
        "over the AWS HealthImaging API, for tests and demos. Faults can also be changed at run "
        "time: POST /_emulator/faults (see docs/ahi.md).",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="dicomweb-proxy data folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument(
        "--latency",
        action="append",
        default=[],
        metavar="OPERATION=SECONDS",
        help="delay every call of OPERATION ('*' for all), e.g. GetImageFrame=0.05; repeatable",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ERROR[@OP,...][:N|:FRACTION]",
        help="answer ERROR (ThrottlingException, InternalServerException, AccessDeniedException, "
        "...) on the next N calls, on FRACTION of them, or always; e.g. ThrottlingException:5 or "
        "InternalServerException@GetImageFrame:0.1; repeatable",
    )
    args = parser.parse_args(argv)
    faults = Faults()
    try:
        latency = {}
        for item in args.latency:
            name, _, seconds = item.partition("=")
            latency[name] = float(seconds)
        faults.configure({"latency": latency, "errors": [parse_fault_flag(f) for f in args.fault]})
    except ValueError as error:
        parser.error(str(error))
    if not (args.data_dir / "store").is_dir():
        parser.error(f"{args.data_dir / 'store'} does not exist: import some studies first")
    print(f"AHI emulator at http://{args.host}:{args.port}", flush=True)
    uvicorn.run(create_app(args.data_dir, faults), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
