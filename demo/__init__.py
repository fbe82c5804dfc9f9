"""A throwaway node with a real container runtime, for the end-to-end tests and `python3 -m demo`."""
