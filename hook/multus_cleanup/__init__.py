"""multus-cleanup: uninstall Multus CNI completely and leave every node able to start pods.

Two rooms share one config model (`config`) and one report model (`report`):
- `node`: the node engine, pure filesystem work on one host root; never imports `kubernetes`.
- `cluster`: the orchestrator, the only code that talks to the Kubernetes API.
"""

__version__ = "0.1.0"
