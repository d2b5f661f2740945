"""The exception types the tool raises for problems a user can act on, and their exit status.

Exit status (tuxmake's convention): 1 for bad input or a tool error, 2 when a kernel build,
a patch check or a scenario fails."""

EXIT_ERROR = 1   # bad input (options, YAML), a missing tool, an environment problem
EXIT_FAILED = 2  # the work ran and found a failure: kernel build, patch check, scenario


class ForgeError(Exception):
    """A problem with the user's input or environment, with a message that says what to fix."""

    exit_code = EXIT_ERROR


class CheckFailed(ForgeError):
    """A kernel build, a patch check or a scenario failed: the input was fine, the result is not."""

    exit_code = EXIT_FAILED
