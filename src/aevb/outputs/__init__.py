"""What a run leaves for people and for other programs: the paper's figures (`plots`),
report.html (`report`), the explorer page (`explorer`), standalone programs (`export`)
and the end-of-run hook that writes them (`finish`)."""


def __getattr__(name):  # the modules here as attributes, imported on first use
    from .. import _submodule

    return _submodule(__name__, name)
