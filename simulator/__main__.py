"""`python -m simulator`: the same as `devicecloud simulate`."""

from simulator.cli import main

if __name__ == "__main__":
    main()
