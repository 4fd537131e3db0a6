"""`python -m cnnlab ...` is the `cnnlab` command; torchrun starts its ranks this way (`-m cnnlab`)."""
import sys

if __name__ == "__main__":
    from cnnlab.cli import main

    sys.exit(main())
