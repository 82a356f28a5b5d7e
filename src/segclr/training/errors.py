"""Training errors (a light module: the CLI imports it without loading Lightning)."""


class NonFiniteError(RuntimeError):
    """Training produced NaN/Inf losses (or was fed NaN/Inf inputs) for too many steps in a row."""
