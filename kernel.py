"""Digit Recognizer: the one entry point, locally (`python kernel.py --fast`) and on Kaggle (through the bundle).

Flags: `python kernel.py --help`: every setting of the run is a field of digit_recognizer/config.py's Config; this
file adds only where the data and the files are (--data-dir, --out, --no-plots).
"""

import argparse
import os
import signal
import sys


def default_out() -> str:
    if os.path.isdir("/kaggle/working"):
        return "/kaggle/working"
    if "KAGGLE_KERNEL_RUN_TYPE" in os.environ:  # a Kaggle batch run elsewhere (the stand-in): cwd is the working folder
        return "."
    return "output"


def main(argv=None) -> int:
    from digit_recognizer import config as configuration

    parser = argparse.ArgumentParser(description="Train a digit recognizer and write submission.csv.",
                                     allow_abbrev=False)  # `--epoch 3` must not pass for --epochs
    own = [parser.add_argument("--data-dir", help="folder with train.csv and test.csv (.csv or .csv.gz)"),
           parser.add_argument("--out", help="where submission.csv goes (default: the working folder on Kaggle, "
                                             "else ./output)"),
           parser.add_argument("--no-plots", action="store_true", help="skip the pictures (summary.json is still "
                                                                         "written)")]
    known = [option for action in own for option in action.option_strings] + configuration.add_arguments(parser)
    # parse_known_args: under ipykernel (a Kaggle notebook) argv carries the kernel's own flags
    argv = configuration.field_spelling(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    for warning in configuration.unknown_flag_warnings(unknown, known):
        print(warning, file=sys.stderr)
    out = args.out or default_out()
    try:
        config = configuration.from_args(args)
        from digit_recognizer import data, pipeline

        pipeline.run(config, data.find_data(args.data_dir), out, plots=not args.no_plots)
    except (ValueError, OSError) as error:  # OSError: a disk that fills up while the files are written
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def interrupted(number, frame):
    """Ctrl-C: one line and exit 130 at once. Unwinding a training step that Ctrl-C cut short can crash inside
    TensorFlow (free(): invalid next size), so nothing unwinds: this removes what a normal exit would, the
    half-written temporary files and the package a bundle unpacked (kaggle_road/bundle.py), and leaves."""
    from digit_recognizer import quiet, submit

    quiet.tell("interrupted: stopped before the end; no file is left half-written")  # even while the backend loads
    submit.remove_unfinished()
    unpacked = os.environ.get("DIGIT_RECOGNIZER_BUNDLE_ZIP")
    if unpacked and os.path.exists(unpacked):
        os.remove(unpacked)
    sys.stdout.flush()
    os._exit(130)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, interrupted)
    sys.exit(main())
