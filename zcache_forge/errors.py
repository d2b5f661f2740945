"""The one exception type the tool raises for problems a user can act on."""


class ForgeError(Exception):
    """A problem with the user's input or environment, with a message that says what to fix."""
