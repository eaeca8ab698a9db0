# IPython configuration of the laue-live profile: matplotlib event loop for the live views.
import os

c = get_config()  # noqa: F821 - provided by IPython
# Interactive figures unless a non-GUI backend was asked for (headless sessions, tests).
if os.environ.get("MPLBACKEND", "").lower() not in ("agg", "pdf", "svg", "ps", "template"):
    c.InteractiveShellApp.matplotlib = "auto"
c.TerminalIPythonApp.display_banner = True
