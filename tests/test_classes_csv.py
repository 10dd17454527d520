"""classes.csv: the canonical writer and every variant the reader accepts."""

import pytest

from jupyter_cvat_train.models.classes import ClassesError, read_classes_csv, write_classes_csv


def test_round_trip(tmp_path):
    p = tmp_path / "classes.csv"
    write_classes_csv(p, ["RBC", "WBC", "Platelets"])
    assert p.read_text().splitlines() == ["labels,id", "RBC,1", "WBC,2", "Platelets,3"]
    assert read_classes_csv(p) == ["RBC", "WBC", "Platelets"]


@pytest.mark.parametrize(
    "text",
    [
        "labels,id\nA,1\nB,2\n",  # current
        "labels\nA\nB\n",  # labels only: row k is id k
        "A\nB\n",  # no header
        "id,labels\n2,B\n1,A\n",  # columns swapped, rows unordered
        "background,0\nA,1\nB,2\n",  # explicit background row
        "labels,id\nA,0\nB,1\n",  # 0-based ids
        "\ufefflabels,id\r\nA,1\r\nB,2\r\n",  # BOM and CRLF from spreadsheet tools
    ],
)
def test_variants(tmp_path, text):
    p = tmp_path / "classes.csv"
    p.write_bytes(text.encode("utf-8"))
    assert read_classes_csv(p) == ["A", "B"]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        ("labels,id\nA,1\nB,3\n", "without gaps"),
        ("labels,id\nA,1\nB,1\n", "without gaps"),
        ("labels,id\nA,x\n", "not an integer"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, text, fragment):
    p = tmp_path / "classes.csv"
    p.write_text(text)
    with pytest.raises(ClassesError, match=fragment) as e:
        read_classes_csv(p)
    assert str(p) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ClassesError, match="not found"):
        read_classes_csv(tmp_path / "nope.csv")
