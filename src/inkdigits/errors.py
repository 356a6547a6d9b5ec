"""One exception type for every problem a user can fix (bad input, missing files).

The CLI turns it into a one-line message and exit code 2; anything else is a bug.
"""


class InkdigitsError(Exception):
    """A problem with the user's input or files, explained in one line."""
