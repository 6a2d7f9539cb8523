"""`python -m runtime.bench ENGINE...`, the bench under the name the README has always given it: this process
becomes `asr-engines bench` (os.execv: the same process id, so signals and exit codes are the bench's own).

The bench measures engines, so it is part of the last stage and the command layer above it; the runtime, which
apps import, never imports it. This file only hands the command line over.
"""

import os
import sys

if __name__ == "__main__":
    os.execv(sys.executable, [sys.executable, "-m", "asr_engines", "bench", *sys.argv[1:]])
