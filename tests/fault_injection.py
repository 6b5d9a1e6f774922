"""Runs `keras-gradinn` and kills it with SIGKILL at a chosen, deterministic point.

    python tests/fault_injection.py PATTERN N [--epochs LOG] -- ARGS...

runs `keras-gradinn ARGS...` and sends the process SIGKILL (no cleanup, no
`finally`, like a power cut or the OOM killer) just before the N-th rename
(`os.replace`, or `os.rename`, which `pathlib.Path.rename` uses) whose target's
name matches the glob PATTERN: the new file is complete in its temporary
place, and not yet in place. Every atomic write in the package ends with such
a rename, so this is the moment where a non-atomic writer would leave a half
file. With `--epochs LOG`, each final-fit epoch this process finishes is
appended to LOG, so a test can tell what a resumed process trained itself.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import pathlib
import signal
import sys


def record_epochs(log: pathlib.Path) -> None:
    """Appends the number of every final-fit epoch this process finishes to `log`."""
    from keras_gradinn import checkpoints

    original = checkpoints.Checkpointer.on_epoch_end
    log.write_text("")  # an empty log: this process trained no epoch

    def on_epoch_end(self, epoch, logs=None):
        with open(log, "a") as handle:
            handle.write(f"{epoch}\n")
        return original(self, epoch, logs)

    checkpoints.Checkpointer.on_epoch_end = on_epoch_end


def kill_at_rename(pattern: str, nth: int) -> None:
    """SIGKILLs this process just before the `nth` rename onto a name matching `pattern`."""
    seen = 0

    def armed(rename):
        def wrapper(source, target, *args, **kwargs):
            nonlocal seen
            if fnmatch.fnmatch(os.path.basename(os.fspath(target)), pattern):
                seen += 1
                if seen == nth:
                    os.kill(os.getpid(), signal.SIGKILL)
            return rename(source, target, *args, **kwargs)

        return wrapper

    os.replace, os.rename = armed(os.replace), armed(os.rename)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pattern")
    parser.add_argument("nth", type=int)
    parser.add_argument("--epochs", type=pathlib.Path)
    argv = sys.argv[1:]
    split = argv.index("--")  # everything after it goes to keras-gradinn untouched
    options, args = parser.parse_args(argv[:split]), argv[split + 1:]
    if options.epochs is not None:
        record_epochs(options.epochs)
    kill_at_rename(options.pattern, options.nth)
    from keras_gradinn.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
