"""The cluster orchestrator: the only code that talks to the Kubernetes API."""
