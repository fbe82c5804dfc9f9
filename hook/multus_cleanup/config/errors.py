"""The one error type for bad configuration or usage: it always names the offending field."""


class ConfigError(ValueError):
    """Invalid configuration. `field` is the dotted path of the offending key (e.g. `node.cniBinDir`)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")
