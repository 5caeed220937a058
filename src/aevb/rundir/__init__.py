"""The run directory: its files, written atomically (`files`), checksummed (`integrity`),
read and checked (`checkpoint`, `state_checks`). Everything else goes through here."""


def __getattr__(name):  # the modules here as attributes, imported on first use
    from .. import _submodule

    return _submodule(__name__, name)
