"""One line on stderr and a non-zero exit code for every mistake a user can make on the command line.

The root ``laue-live`` group is a :class:`GuardedGroup`: an error laue-live raises on purpose
(:class:`~laue_live._errors.LaueLiveError`) and a mistyped argument or option (click's usage errors)
end the command with ``error: <what went wrong and what to do>`` on stderr, never a traceback.
Exit codes: 1 for a failure, 2 for a bad argument or setting (as click's own usage errors), 130 for
Ctrl-C. Anything else is a bug of laue-live and keeps its traceback, for the report.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

try:  # typer >= 0.20 carries its own copy of click, whose usage errors are these
    from typer._click.core import Context
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # an older typer uses click itself
    from click.core import Context
    from click.exceptions import NoArgsIsHelpError, UsageError

from laue_live._errors import LaueLiveError, SettingsError

__all__ = ["GuardedGroup", "one_line", "exit_code"]


def one_line(text: str) -> str:
    """``text`` on one line: its lines stripped and joined, runs of spaces collapsed."""
    return " ".join(str(text).split())


def exit_code(exc: BaseException) -> int:
    """Exit code of an error: 2 for a bad argument or setting, 1 for any other failure."""
    return 2 if isinstance(exc, SettingsError | UsageError) else 1


class GuardedGroup(TyperGroup):
    """The root command group: turns laue-live's errors and usage errors into one clear line."""

    def invoke(self, ctx: Context):
        """Run the command; a LaueLiveError or a usage error becomes ``error: ...`` and an exit code."""
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise  # `laue-live query` alone prints its help
        except UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            typer.echo(f"error: {one_line(exc.format_message())} (see `{where} --help`)", err=True)
            raise typer.Exit(exit_code(exc)) from None
        except LaueLiveError as exc:
            typer.echo(f"error: {one_line(str(exc))}", err=True)
            raise typer.Exit(exit_code(exc)) from None
