# IPython configuration of the laue-live profile: matplotlib in interactive mode for the live views.
c = get_config()  # noqa: F821 - provided by IPython
c.InteractiveShellApp.matplotlib = "auto"
c.TerminalIPythonApp.display_banner = True
