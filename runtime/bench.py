"""`python -m runtime.bench ENGINE...`: the bench under the name users type; it lives in `measure.bench`.

The bench measures engines, so it belongs to the last stage; this module only keeps the command. Apps that
import the runtime never import it.
"""

from common.extras import require

require("python -m runtime.bench", "bench")

from measure.bench import main  # noqa: E402  (after the check: the bench imports its extra)

if __name__ == "__main__":
    main()
