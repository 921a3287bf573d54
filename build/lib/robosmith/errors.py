"""One base class for the errors a user can fix: bad input, a missing file, a run that is not there.

Each carries one line that names the file and the field (or the flag) at fault. The CLI catches this class in
one place and prints the line; anything else is a bug and keeps its traceback.
"""


class RobosmithError(Exception):
    """A problem with the user's input or files, said in one line."""


class ConfigError(RobosmithError, ValueError):
    """Settings that cannot work (a count below one, an unknown choice); names the setting."""
