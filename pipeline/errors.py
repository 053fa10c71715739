"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class RdistillError(Exception):
    """An expected failure caused by input (a file, a key, a value); its message names the culprit."""
