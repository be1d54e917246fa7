"""The one reader of users' text files: same answers from every command."""

import pytest

from edgebert.cli import main
from edgebert.errors import EdgebertError
from edgebert.eval.text_files import label_warnings, read_labelled, read_sentences, read_texts
from edgebert.quantize import calibration


@pytest.fixture
def latin1(tmp_path):
    p = tmp_path / "latin1.tsv"
    p.write_bytes("positive\tun film tr\xe8s r\xe9ussi\nnegative\tpas terrible\n".encode("latin-1"))
    return p


def test_formats(tmp_path):
    p = tmp_path / "s.tsv"
    p.write_text("id\tsentiment\ttext\n1\t1.5\tgood film\n2\t-0.6\tbad film\n3\t0.2\tneutral\n")
    assert read_texts(p) == (["good film", "bad film"], [1, 0])
    assert read_labelled(p) == (["good film", "bad film"], [1, 0], ["negative", "positive"])
    assert read_sentences(p) == ["good film", "bad film", "neutral"]
    q = tmp_path / "l.tsv"
    q.write_text("pos\tgreat\n\nneg\tawful\npos\tfine\n")
    assert read_labelled(q) == (["great", "awful", "fine"], [1, 0, 1], ["neg", "pos"])
    plain = tmp_path / "plain.txt"
    plain.write_text("one\n\ntwo\n")
    (tmp_path / "labels.txt").write_text("pos\nneg\n")
    assert read_texts(plain, tmp_path / "labels.txt") == (["one", "two"], [1, 0])


@pytest.mark.parametrize("reader", [read_texts, read_labelled, read_sentences, calibration.read_texts])
def test_every_reader_names_a_file_that_is_not_utf8(reader, latin1):
    with pytest.raises(EdgebertError, match=r"latin1.tsv is not UTF-8 text \(byte 19: b'\\xe8'\)") as e:
        reader(latin1)
    assert "iconv" in e.value.fix


def test_commands_give_the_one_line_error_not_a_traceback(latin1, hf_tiny, tmp_path, capsys):
    bundle = tmp_path / "nobundle"
    for argv in (
        ["verify", str(bundle), "--texts", str(latin1)],
        ["android", str(hf_tiny), "--task", "classifier", "--train", str(latin1), "-o", str(tmp_path / "a")],
        ["finetune", str(hf_tiny), "--train", str(latin1), "-o", str(tmp_path / "f")],
        ["export", str(hf_tiny), "--calibration", str(latin1), "-o", str(tmp_path / "e")],
    ):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("edgebert: error: ") and "is not UTF-8 text" in err[-1], (argv, err[-3:])


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(EdgebertError, match="training file .*missing.tsv not found"):
        read_labelled(tmp_path / "missing.tsv")
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(EdgebertError, match="texts file .*empty.txt is empty"):
        read_texts(tmp_path / "empty.txt")


def test_label_warnings():
    names = ["negative", "positive"]
    # The movie corpus taken from its head: positives first, 2,948 to 52.
    sorted_head = [1] * 2948 + [0] * 52
    w = label_warnings(sorted_head, names, "head.tsv")
    assert any("imbalanced: negative 52 to positive 2,948" in x for x in w)
    assert any("sorted by label" in x for x in w)
    assert label_warnings([0, 1] * 50, names, "ok.tsv") == []
    assert label_warnings([1] * 30, names, "one.tsv") == ["one.tsv has no sentences labelled negative"]
