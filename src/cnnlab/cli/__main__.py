"""`python -m cnnlab.cli ...` is the `cnnlab` command too (as `python -m cnnlab`)."""
import sys

if __name__ == "__main__":
    from cnnlab.cli import main

    sys.exit(main())
