"""The one exception type for problems a user can fix."""


class VilaM3Error(Exception):
    """A user-fixable problem (bad input, missing weights, wrong option).

    The message always says what went wrong and what to do about it; the CLI prints it without a traceback.
    """
