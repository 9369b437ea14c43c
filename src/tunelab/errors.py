"""The one exception type that means "the user asked for something we cannot do".

The CLI turns a `UserError` into its message on stderr and exit code 2, never a traceback.
Raise it for every mistake a user can fix (bad key, bad data row, missing optional package,
incompatible options); let programming errors surface as ordinary exceptions.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input, with a message that names the thing and the fix."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class MissingPackageError(UserError):
    """An optional package a feature needs is not installed."""

    def __init__(self, package: str, feature: str, extra: str | None = None) -> None:
        hint = f'pip install "tunelab[{extra}]"' if extra else f"pip install {package}"
        super().__init__(f"{feature} needs the package '{package}', which is not installed. Install it with: {hint}")
        self.package = package


def require_package(module: str, feature: str, *, package: str | None = None, extra: str | None = None) -> None:
    """Fail with a clear message when `module` cannot be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingPackageError(package or module, feature, extra)
