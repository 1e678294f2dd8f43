import io
import sys

from lrpkit import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_show_on_a_terminal_and_in_notebooks_not_in_pipes(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress.wanted(None) and progress.wanted(True)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert progress.wanted(None) and not progress.wanted(False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setitem(sys.modules, "ipykernel", object())  # what a Jupyter kernel has imported
    assert progress.wanted(None)


def test_a_bar_counts_and_a_silent_one_writes_nothing(monkeypatch):
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert list(progress.bar(range(3), "work", None, file=err)) == [0, 1, 2]
    assert "work" in err.getvalue() and "3/3" in err.getvalue()
    quiet = io.StringIO()
    assert list(progress.bar(range(3), "work", False, file=quiet)) == [0, 1, 2] and quiet.getvalue() == ""
