"""`python -m runtime.bench ENGINE...`: the bench under the name users type; it lives in `measure.bench`.

The bench measures engines, so it belongs to the last stage; this module only keeps the command. Apps that
import the runtime never import it.
"""

from measure.bench import main

if __name__ == "__main__":
    main()
