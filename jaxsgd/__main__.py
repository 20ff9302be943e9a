"""`python -m jaxsgd`: the Hydra application (see jaxsgd.cli)."""

from jaxsgd.cli import main

if __name__ == "__main__":
    main()
