"""Every Python example in the README runs as written."""
import os
import re
import runpy

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
BLOCKS = re.findall(r"```python\n(.*?)```", open(README).read(), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path, monkeypatch, capfd):
    """Runs as written, prints what it read, and leaves nothing on stderr: no librdkafka
    "FAIL ... Disconnected" line from a client still connected when its server stopped (capfd:
    librdkafka writes to file descriptor 2, not to sys.stderr)."""
    monkeypatch.chdir(tmp_path)
    script = tmp_path / f"example{index}.py"
    script.write_text(BLOCKS[index])
    runpy.run_path(str(script), run_name="__main__")
    out, err = capfd.readouterr()
    assert out.strip(), "an example prints what it read"
    assert "FAIL" not in err and "Traceback" not in err, err
