"""``python -m fairlatent.train.torchrun ARGS``: torchrun (``torch.distributed.run``) that reports a failed
rank in one line instead of a page of traceback.

Why: ``--nproc N`` re-launches a command under torchrun. When a rank stops on a user error (exit status 2,
its one-line message already printed by the rank itself), plain torchrun adds its own ``ChildFailedError``
traceback and log lines, which reads like a crash of fairlatent. This wrapper runs the same launcher
(:func:`torch.distributed.run.run`) with its agent's log quiet and exits with the failed rank's status: 2
for a user error, silently; any other failure (a crash, a signal) with one line naming the rank, its exit
status or signal and its error file, so a real crash is still reported.
"""

from __future__ import annotations

import logging
import sys


def main(argv: list[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        run(parse_args(sys.argv[1:] if argv is None else argv))
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        if failure.exitcode == 2:  # a user error: the rank printed its own one-line message
            return 2
        how = f"signal {failure.signal_name()}" if failure.exitcode < 0 else f"exit status {failure.exitcode}"
        print(f"error: rank {rank} (pid {failure.pid}) failed with {how}; error file: {failure.error_file}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
