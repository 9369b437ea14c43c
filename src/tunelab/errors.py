"""The one exception type that means "the user asked for something we cannot do".

The CLI turns a `UserError` into its message on stderr and exit code 2, never a traceback.
Raise it for every mistake a user can fix (bad key, bad data row, missing optional package,
incompatible options); let programming errors surface as ordinary exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence


class UserError(Exception):
    """A mistake in the user's input, with a message that names the thing and the fix."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ProblemList(UserError):
    """Several mistakes found in one pass, reported together so one run shows everything to fix.

    `tunelab check` and the checks before training collect every problem they find instead of
    stopping at the first; each problem is one line that names its key or file and the fix.
    """

    def __init__(self, problems: Sequence[str], where: str | None = None) -> None:
        prefix = f"{where}: " if where else ""
        # the same problem found twice is listed once; one that names `where` itself does not repeat it
        self.problems = list(dict.fromkeys(p[len(prefix):] if prefix and p.startswith(prefix) else p
                                           for p in problems))
        if len(self.problems) == 1:
            message = prefix + self.problems[0]
        else:
            lines = "\n".join(f"  - {problem}" for problem in self.problems)
            message = f"{prefix}{len(self.problems)} problems found:\n{lines}"
        super().__init__(message)


def raise_problems(problems: Sequence[str], where: str | None = None) -> None:
    """Raise one `ProblemList` when there is anything to report."""
    if problems:
        raise ProblemList(problems, where)


class MissingPackageError(UserError):
    """An optional package a feature needs is not installed; the install command comes from
    `tunelab.optional_packages`, so it always names an extra that pyproject.toml defines."""

    def __init__(self, package: str, feature: str, extra: str | None = None) -> None:
        from tunelab.optional_packages import install_command

        super().__init__(f"{feature} needs the package '{package}', which is not installed. "
                         f"Install it with: {install_command(package, extra)}")
        self.package = package


def require_package(module: str, feature: str, *, package: str | None = None, extra: str | None = None) -> None:
    """Fail with a clear message when `module` cannot be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingPackageError(package or module, feature, extra)
