"""``python -m dicomweb_proxy.samples OUT_DIR``: write the sample studies and bulk CT."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

from dicomweb_proxy.samples import (
    SUPPORTED_TRANSFER_SYNTAXES,
    generate_ct_series,
    generate_sample_studies,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dicomweb_proxy.samples",
        description="Write synthetic DICOM Part 10 studies (deterministic for a given seed).",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-samples", action="store_true", help="skip the demo/test study set")
    parser.add_argument("--ct-studies", type=int, default=0, help="also write N bulk CT studies")
    parser.add_argument("--slices", type=int, default=100, help="slices per bulk CT study")
    parser.add_argument("--size", type=int, default=512, help="rows and columns of bulk CT")
    parser.add_argument(
        "--transfer-syntax",
        default=ExplicitVRLittleEndian,
        choices=[ts for ts in SUPPORTED_TRANSFER_SYNTAXES if ts != JPEGBaseline8Bit],
        metavar="UID",
        help="transfer syntax of the bulk CT (default: Explicit VR Little Endian)",
    )
    args = parser.parse_args(argv)

    start = time.perf_counter()
    paths = [] if args.no_samples else generate_sample_studies(args.out_dir, seed=args.seed)
    if args.ct_studies:
        paths += generate_ct_series(
            args.out_dir,
            n_studies=args.ct_studies,
            slices=args.slices,
            size=args.size,
            seed=args.seed,
            transfer_syntax=args.transfer_syntax,
        )
    elapsed = time.perf_counter() - start
    print(f"wrote {len(paths)} files to {args.out_dir} in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
