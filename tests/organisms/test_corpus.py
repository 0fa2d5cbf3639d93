

def test_text_folders_expand_to_their_text_files(tmp_path):
    import pytest

    from mechscope.errors import InputError
    from mechscope.organisms.corpus import text_files

    (tmp_path / "b.txt.gz").write_bytes(b"")
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "notes.md").write_text("x")
    assert text_files([tmp_path, "other.txt"]) == [str(tmp_path / "a.txt"), str(tmp_path / "b.txt.gz"), "other.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no .txt or .txt.gz files"):
        text_files([empty])
