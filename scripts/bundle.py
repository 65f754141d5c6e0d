"""Builds build/kernel.py: one self-contained file that Kaggle can run, carrying the digit_recognizer package.

  python scripts/bundle.py                 # build/kernel.py, runs like `python kernel.py`
  python scripts/bundle.py --args --fast   # bake in flags (Kaggle runs the script with none); later ones win

Then `kaggle kernels push` (with your user in kernel-metadata.json's id), or let `python scripts/push.py` do it all.
"""

import argparse
import sys

from kaggle_road import bundle
from kaggle_road.client import command


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(bundle.ROOT / "build" / "kernel.py"), help="where the bundle goes")
    parser.add_argument("--args", nargs=argparse.REMAINDER, default=[], help="flags baked into the bundle")
    options = parser.parse_args(argv)

    def build():
        path, digest = bundle.build(options.args, options.out)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB), bundle hash {digest}, "
              f"commit {bundle.source_commit()}")
    return command(build)


if __name__ == "__main__":
    sys.exit(main())
