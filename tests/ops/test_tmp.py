"""`make test` leaves nothing in /tmp: every temporary file of the session is made in one
directory (tests/conftest.py) that is removed when the session ends."""

import os
import tempfile
from pathlib import Path


def test_temporary_files_go_to_the_session_directory(tmp_path: Path) -> None:
    session_tmp = Path(os.environ["PROFILE_GROUPS_TEST_TMP"])
    assert Path(tempfile.gettempdir()) == session_tmp
    assert os.environ["TMPDIR"] == str(session_tmp)  # and so in every subprocess
    assert tmp_path.is_relative_to(session_tmp)  # pytest's own tmp_path too
    made = Path(tempfile.mkdtemp())
    assert made.is_relative_to(session_tmp)
