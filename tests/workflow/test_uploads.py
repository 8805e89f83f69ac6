"""Saving uploads safely and reading their text back as council context."""

from __future__ import annotations

import io
import logging
import threading
from datetime import datetime
from pathlib import Path

import docx
import pytest

from council_app.workflow.uploads import (
    ALLOWED_EXTENSIONS,
    PLAIN_TEXT_EXTENSIONS,
    StoredUpload,
    UploadRejected,
    load_context_text,
    remove_session_files,
    save_upload,
)

MB = 1024 * 1024


def make_pdf(text: str) -> bytes:
    """A minimal valid one-page PDF showing ``text`` in Helvetica, with a correct xref."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref_at,
    )
    return bytes(out)


def make_docx() -> bytes:
    document = docx.Document()
    document.add_paragraph("Quarterly council briefing")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Region"
    table.cell(0, 1).text = "Revenue"
    table.cell(1, 0).text = "Nordics"
    table.cell(1, 1).text = "42"
    document.add_paragraph("Closing remark")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def upload_names(session: Path) -> list[str]:
    return sorted(p.name for p in (session / "uploaded_files").iterdir())


def save(session: Path, name: str, data: bytes, max_bytes: int = MB) -> StoredUpload:
    return save_upload(session, name, io.BytesIO(data), max_bytes)


class OneWayStream(io.RawIOBase):
    """A non-seekable body, like a raw WSGI input, so the size is only known by reading."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = self._inner.readinto(buffer)
        self.bytes_read += n
        return n


# ----------------------------------------------------------------------------- types


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    stored = save(tmp_path, "report.pdf", make_pdf("Hello council members"))
    assert stored.extension == ".pdf"
    text = Path(stored.text_path).read_text(encoding="utf-8")
    assert "Hello council members" in text
    assert Path(stored.text_path) == tmp_path / "extracted" / "report.pdf.txt"
    assert stored.extraction_note is None


def test_docx_paragraphs_and_table_cells_are_extracted(tmp_path: Path) -> None:
    stored = save(tmp_path, "brief.docx", make_docx())
    text = Path(stored.text_path).read_text(encoding="utf-8")
    for word in ("Quarterly council briefing", "Region", "Revenue", "Nordics", "42", "Closing"):
        assert word in text
    assert text.index("Quarterly") < text.index("Nordics") < text.index("Closing")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.txt", "plain words äö"),
        ("README.md", "# Heading\nbody"),
        ("data.json", '{"key": "valüe"}'),
        ("script.py", "print('hi')\n"),
        ("table.csv", "a,b\n1,2\n"),
    ],
)
def test_text_types_are_decoded_as_utf8(tmp_path: Path, name: str, content: str) -> None:
    stored = save(tmp_path, name, content.encode("utf-8"))
    assert Path(stored.text_path).read_text(encoding="utf-8") == content
    assert Path(stored.path).read_bytes() == content.encode("utf-8")


def test_every_allowed_type_is_covered() -> None:
    documents = {".pdf", ".docx", ".xlsx", ".pptx", ".html", ".htm"}
    assert documents | {".txt", ".md", ".json", ".py", ".csv", ".log"} <= set(ALLOWED_EXTENSIONS)
    assert set(ALLOWED_EXTENSIONS) - documents == set(PLAIN_TEXT_EXTENSIONS)


def make_xlsx() -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Budget"
    sheet.append(["Region", "Revenue", None])
    sheet.append(["Nordics", 42, None])
    sheet.append([None, None, None])
    workbook.create_sheet("Empty")
    notes = workbook.create_sheet("Notes")
    notes["B2"] = "=1+1"
    notes["A3"] = "ship it"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def make_pptx() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Council briefing"
    slide.placeholders[1].text = "Adopt PostgreSQL"
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(4), Inches(4), Inches(1)).table
    table.cell(0, 0).text, table.cell(0, 1).text = "Risk", "Owner"
    table.cell(1, 0).text, table.cell(1, 1).text = "Downtime", "SRE"
    slide.notes_slide.notes_text_frame.text = "Mention the pilot"
    deck.slides.add_slide(deck.slide_layouts[6])  # blank: nothing to say
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def test_xlsx_sheets_and_rows_are_extracted(tmp_path: Path) -> None:
    stored = save(tmp_path, "budget.xlsx", make_xlsx())
    text = Path(stored.text_path).read_text(encoding="utf-8")
    assert stored.extraction_note is None
    assert "## Sheet: Budget\nRegion | Revenue\nNordics | 42" in text
    # Cached values, not formulas: a formula never computed by a spreadsheet app is empty.
    assert "## Sheet: Notes\nship it" in text and "=1+1" not in text
    assert "Empty" not in text


def test_pptx_slides_tables_and_notes_are_extracted(tmp_path: Path) -> None:
    stored = save(tmp_path, "deck.pptx", make_pptx())
    text = Path(stored.text_path).read_text(encoding="utf-8")
    assert text.startswith("## Slide 1\nCouncil briefing\nAdopt PostgreSQL")
    assert "Risk | Owner\nDowntime | SRE" in text
    assert "Notes: Mention the pilot" in text
    assert "## Slide 2" not in text


@pytest.mark.parametrize("name", ["page.html", "page.HTM"])
def test_html_visible_text_is_extracted(tmp_path: Path, name: str) -> None:
    page = (
        "<!doctype html><html><head><title>Q3 plan</title><style>p{color:red}</style>"
        "<script>alert('x')</script></head><body><h1>Plan</h1><p>Migrate   the\n"
        "<b>sessions</b> first.</p><template>hidden</template><ul><li>One</li></ul></body></html>"
    )
    stored = save(tmp_path, name, page.encode("utf-8"))
    text = Path(stored.text_path).read_text(encoding="utf-8")
    assert "Q3 plan" in text and "Plan" in text and "One" in text
    assert "Migrate the" in text and "sessions" in text
    assert "alert" not in text and "color" not in text and "hidden" not in text


@pytest.mark.parametrize(
    ("name", "stored_name"),
    [("server.log", "server.log"), ("README", "README"), ("notes.", "notes")],
)
def test_plain_text_with_other_or_no_extension(tmp_path: Path, name: str, stored_name: str) -> None:
    stored = save(tmp_path, name, "line one\nline twö\n".encode())
    assert stored.filename == stored_name
    assert Path(stored.text_path).read_text(encoding="utf-8") == "line one\nline twö\n"


@pytest.mark.parametrize("name", ["budget.xlsx", "deck.pptx"])
def test_corrupt_office_files_are_accepted_with_empty_text(tmp_path: Path, name: str) -> None:
    stored = save(tmp_path, name, b"PK\x03\x04 not really a zip")
    assert Path(stored.text_path).read_text(encoding="utf-8") == ""
    assert stored.extraction_note and name in stored.extraction_note


def test_invalid_utf8_is_replaced_not_rejected(tmp_path: Path) -> None:
    stored = save(tmp_path, "latin.txt", b"caf\xe9 ok")
    assert Path(stored.text_path).read_text(encoding="utf-8") == "caf\ufffd ok"


def test_extension_is_case_insensitive(tmp_path: Path) -> None:
    stored = save(tmp_path, "SCAN.PDF", make_pdf("Upper case"))
    assert stored.extension == ".pdf"
    assert stored.filename == "SCAN.pdf"
    assert "Upper case" in Path(stored.text_path).read_text(encoding="utf-8")


def test_stored_upload_fields_and_metadata(tmp_path: Path) -> None:
    stored = save(tmp_path, "notes.txt", b"12345")
    assert stored.original_filename == "notes.txt"
    assert stored.size_bytes == 5
    assert Path(stored.path).is_absolute() and Path(stored.path).read_bytes() == b"12345"
    assert Path(stored.path).parent == (tmp_path / "uploaded_files").resolve()
    assert datetime.fromisoformat(stored.ingested_at).utcoffset().total_seconds() == 0
    assert stored.metadata() == {
        "filename": "notes.txt",
        "extension": ".txt",
        "path": stored.path,
        "ingested_at": stored.ingested_at,
        "size_bytes": 5,
    }


# ----------------------------------------------------------------------------- rejections


@pytest.mark.parametrize("name", ["setup.exe", "archive.tar.gz", "evil.pdf.exe", "Makefile", "x."])
def test_disallowed_types_get_415_and_nothing_is_written(tmp_path: Path, name: str) -> None:
    with pytest.raises(UploadRejected) as info:
        save(tmp_path, name, b"MZ\x90\x00\x03\x00\x00\x00")  # a binary, extension or not
    assert info.value.status == 415
    assert ".pdf, .docx, .xlsx, .pptx, .html, .htm, .txt, .md" in info.value.message
    assert not (tmp_path / "uploaded_files").exists()


def test_415_message_names_the_file_and_type(tmp_path: Path) -> None:
    with pytest.raises(UploadRejected) as info:
        save(tmp_path, "x.exe", b"")
    assert info.value.message.startswith("File 'x.exe' has type .exe; allowed types are .pdf")
    assert str(info.value) == info.value.message


def test_no_extension_message(tmp_path: Path) -> None:
    with pytest.raises(UploadRejected) as info:
        save(tmp_path, "Makefile", b"\x7fELF\x02\x01\x01\x00\x00")
    assert "has no extension and is not plain text" in info.value.message
    assert "or plain text with no extension" in info.value.message


@pytest.mark.parametrize("name", ["", "   ", "../", "\x00\n"])
def test_missing_name_gets_400(tmp_path: Path, name: str) -> None:
    with pytest.raises(UploadRejected) as info:
        save(tmp_path, name, b"data")
    assert info.value.status == 400


def test_one_byte_over_limit_gets_413_and_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(UploadRejected) as info:
        save(tmp_path, "big.txt", b"a" * 1025, max_bytes=1024)
    assert info.value.status == 413
    assert "MAX_UPLOAD_MB" in info.value.message
    assert "1,025 bytes" in info.value.message and "1,024 bytes" in info.value.message
    assert not list(tmp_path.rglob("*.txt"))


def test_non_seekable_stream_stops_reading_once_over_limit(tmp_path: Path) -> None:
    body = OneWayStream(b"a" * (5 * MB))
    with pytest.raises(UploadRejected) as info:
        save_upload(tmp_path, "big.txt", body, MB)
    assert info.value.status == 413
    assert body.bytes_read < 2 * MB  # stopped early instead of draining the body
    assert upload_names(tmp_path) == []  # partial file deleted
    assert not (tmp_path / "extracted").exists()


def test_413_message_in_megabytes(tmp_path: Path) -> None:
    size = int(25.3 * MB)
    with pytest.raises(UploadRejected) as info:
        save(tmp_path, "big.pdf", b"\0" * size, max_bytes=20 * MB)
    assert info.value.message == "File 'big.pdf' is 25.3 MB; the limit is 20 MB (MAX_UPLOAD_MB)."


def test_exactly_max_bytes_is_accepted(tmp_path: Path) -> None:
    stored = save(tmp_path, "edge.txt", b"b" * 1024, max_bytes=1024)
    assert stored.size_bytes == 1024
    assert Path(stored.path).stat().st_size == 1024


def test_exactly_max_bytes_accepted_from_non_seekable_stream(tmp_path: Path) -> None:
    stored = save_upload(tmp_path, "edge.txt", OneWayStream(b"b" * 200_000), 200_000)
    assert Path(stored.path).stat().st_size == 200_000


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\x.txt", "x.txt"),
        ("/abs/x.md", "x.md"),
        ("C:\\Users\\me\\notes.md", "notes.md"),
        ("evil\x00name.txt", "evilname.txt"),
        ("line\nbreak\r.txt", "linebreak.txt"),
        ("..txt", "upload.txt"),
        ("...pdf", "upload.pdf"),
        (".hidden.md", "hidden.md"),
        ("a b;rm -rf $HOME.txt", "a_b_rm_-rf_HOME.txt"),
        ("report\u202egpj.exe.txt", "reportgpj.exe.txt"),  # bidi override stripped
    ],
)
def test_hostile_names_land_inside_uploaded_files(tmp_path: Path, name: str, expected: str) -> None:
    session = tmp_path / "session"
    stored = save(session, name, b"content")
    assert stored.filename == expected
    uploads_dir = (session / "uploaded_files").resolve()
    assert Path(stored.path).parent == uploads_dir
    assert Path(stored.text_path).parent == (session / "extracted").resolve()
    assert upload_names(session) == [expected]
    assert stored.original_filename == name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session"]


def test_unicode_names_stay_readable(tmp_path: Path) -> None:
    for name in ("Geschäftsbericht Über.pdf", "日本語の資料.txt", "отчёт-2025.md"):
        data = make_pdf("x") if name.endswith(".pdf") else b"x"
        stored = save(tmp_path, name, data)
        assert stored.filename == name.replace(" ", "_")


def test_decomposed_unicode_is_normalised(tmp_path: Path) -> None:
    stored = save(tmp_path, "cafe\u0301.txt", b"x")
    assert stored.filename == "caf\u00e9.txt"


def test_long_names_are_truncated_keeping_extension(tmp_path: Path) -> None:
    stored = save(tmp_path, "a" * 400 + ".txt", b"x")
    assert stored.filename.endswith(".txt")
    assert len(stored.filename) <= 150
    cjk = save(tmp_path, "資" * 300 + ".txt", b"x")
    assert cjk.filename.endswith(".txt")
    assert len(cjk.filename.encode()) <= 200  # filesystems limit bytes, not chars
    assert Path(cjk.text_path).is_file()


def test_duplicate_names_do_not_overwrite(tmp_path: Path) -> None:
    first = save(tmp_path, "notes.txt", b"first")
    second = save(tmp_path, "notes.txt", b"second")
    third = save(tmp_path, "sub/notes.txt", b"third")
    assert [first.filename, second.filename, third.filename] == [
        "notes.txt",
        "notes_1.txt",
        "notes_2.txt",
    ]
    assert Path(first.path).read_bytes() == b"first"
    assert Path(second.path).read_bytes() == b"second"
    assert Path(third.text_path).read_text(encoding="utf-8") == "third"
    assert Path(first.text_path).read_text(encoding="utf-8") == "first"


def test_concurrent_uploads_of_same_name_get_distinct_files(tmp_path: Path) -> None:
    workers = 8
    barrier = threading.Barrier(workers)
    results: list[StoredUpload] = []
    lock = threading.Lock()

    def upload(i: int) -> None:
        barrier.wait()
        stored = save(tmp_path, "same.txt", f"payload {i}".encode())
        with lock:
            results.append(stored)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len({r.filename for r in results}) == workers
    assert len(upload_names(tmp_path)) == workers
    for r in results:
        assert Path(r.path).read_text() == Path(r.text_path).read_text()


# ----------------------------------------------------------------------------- extraction failures


def test_corrupt_pdf_is_accepted_with_empty_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="council_app.workflow.uploads"):
        stored = save(tmp_path, "broken.pdf", b"%PDF-1.4 this is not really a pdf")
    assert Path(stored.path).is_file()
    assert Path(stored.text_path).read_text(encoding="utf-8") == ""
    assert stored.extraction_note and "broken.pdf" in stored.extraction_note
    assert any(
        r.name == "council_app.workflow.uploads" and r.levelno == logging.WARNING
        for r in caplog.records
    )


def test_corrupt_docx_is_accepted_with_empty_text(tmp_path: Path) -> None:
    stored = save(tmp_path, "broken.docx", b"PK\x03\x04 not a zip")
    assert Path(stored.text_path).read_text(encoding="utf-8") == ""
    assert stored.extraction_note is not None


# ----------------------------------------------------------------------------- context text


def test_load_context_text_concatenates_with_headers(tmp_path: Path) -> None:
    a = save(tmp_path, "a.txt", b"alpha text")
    b = save(tmp_path, "b.pdf", make_pdf("bravo text"))
    context = load_context_text(tmp_path, [a.metadata(), b.metadata()])
    assert context.startswith("### File: a.txt\nalpha text")
    assert "### File: b.pdf\n" in context and "bravo text" in context
    assert context.index("a.txt") < context.index("b.pdf")


def test_load_context_text_uses_legacy_content(tmp_path: Path) -> None:
    legacy = [{"filename": "old.txt", "path": "/srv/elsewhere/old.txt", "content": "legacy body"}]
    assert load_context_text(tmp_path, legacy) == "### File: old.txt\nlegacy body"


def test_extracted_file_wins_over_legacy_content(tmp_path: Path) -> None:
    stored = save(tmp_path, "n.md", b"fresh")
    item = {**stored.metadata(), "content": "stale"}
    assert load_context_text(tmp_path, [item]) == "### File: n.md\nfresh"


def test_load_context_text_skips_missing_with_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kept = save(tmp_path, "kept.txt", b"kept")
    gone = {"filename": "gone.txt", "path": str(tmp_path / "uploaded_files" / "gone.txt")}
    with caplog.at_level(logging.WARNING, logger="council_app.workflow.uploads"):
        context = load_context_text(tmp_path, [gone, kept.metadata()])
    assert context == "### File: kept.txt\nkept"
    assert any("gone.txt" in r.getMessage() for r in caplog.records)


def test_load_context_text_reextracts_when_extracted_file_lost(tmp_path: Path) -> None:
    stored = save(tmp_path, "p.pdf", make_pdf("recovered words"))
    Path(stored.text_path).unlink()
    assert "recovered words" in load_context_text(tmp_path, [stored.metadata()])


def test_load_context_text_never_reads_outside_session(tmp_path: Path) -> None:
    session = tmp_path / "s"
    session.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    items = [
        {"filename": "../secret.txt", "path": str(secret)},
        {"filename": "x.txt", "path": str(secret)},
    ]
    assert "TOP SECRET" not in load_context_text(session, items)


def test_unreadable_upload_still_gets_a_header(tmp_path: Path) -> None:
    stored = save(tmp_path, "broken.pdf", b"garbage")
    context = load_context_text(tmp_path, [stored.metadata()])
    assert context.startswith("### File: broken.pdf\n")
    assert "no text could be extracted" in context


# ----------------------------------------------------------------------------- removal


def test_remove_session_files_deletes_tree(tmp_path: Path) -> None:
    session = tmp_path / "session_20251210_160742_5b86ea"
    save(session, "a.txt", b"a")
    remove_session_files(session)
    assert not session.exists()
    remove_session_files(session)  # absent: no error


def test_remove_session_files_does_not_follow_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target)
    remove_session_files(link)
    assert not link.exists() and (target / "keep.txt").read_text() == "keep"
