"""`python -m schemas [--check] [--root DIR]`: write, or check, the generated event contract files."""
import argparse
import sys
from pathlib import Path

from schemas.generate import ROOT, check, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file has drifted")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)

    if args.check:
        drifted = check(args.root)
        if drifted:
            print("Generated event files are out of date (run `make schemas`):", file=sys.stderr)
            for rel in drifted:
                print(f"  {rel}", file=sys.stderr)
            return 1
        print("Generated event files are up to date.")
        return 0

    written, removed = write(args.root)
    for rel in written:
        print(f"wrote {rel}")
    for rel in removed:
        print(f"removed {rel}")
    if not written and not removed:
        print("Generated event files are up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
