"""Storing user uploads for a session and turning them into context text.

Uploads come straight from browsers, so everything about them is untrusted:
the name is reduced to a safe basename, the type is checked before a byte is
written, the size is enforced while streaming, and text extraction failures
never lose the upload itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

logger = logging.getLogger(__name__)

DOCUMENT_EXTENSIONS = (".pdf", ".docx", ".xlsx", ".pptx", ".html", ".htm")
# Read as UTF-8 text.  A file with no extension at all is accepted too when its first
# bytes are text (README, Makefile, a log without a suffix).
PLAIN_TEXT_EXTENSIONS = (
    *(".txt", ".md", ".json", ".py", ".csv", ".log", ".tsv", ".yaml", ".yml", ".toml"),
    *(".ini", ".cfg", ".xml", ".rst", ".sql", ".js", ".ts", ".sh"),
)
ALLOWED_EXTENSIONS = DOCUMENT_EXTENSIONS + PLAIN_TEXT_EXTENSIONS
NO_EXTENSION = ""
_SNIFF_BYTES = 8192
MAX_SHEET_ROWS = 20_000  # per worksheet; the prompt keeps far less than this anyway

UPLOADS_DIR_NAME = "uploaded_files"
EXTRACTED_DIR_NAME = "extracted"

MAX_NAME_CHARS = 150
# ext4 and friends allow 255 *bytes* per name; keep room for "_123" and the
# ".txt" added to the extracted-text file.
MAX_NAME_BYTES = 200
_CHUNK_SIZE = 64 * 1024
_MAX_DUPLICATES = 10_000
_FALLBACK_STEM = "upload"
_STEM_PUNCTUATION = frozenset("-_.()+,=@[]{}~")


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class UploadRejected(Exception):
    """An upload refused with an HTTP status (400, 413, 415) and an actionable message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class StoredUpload:
    """An upload saved on disk, with where its extracted text lives."""

    filename: str
    original_filename: str
    extension: str
    size_bytes: int
    path: str
    text_path: str
    ingested_at: str
    extraction_note: str | None = None

    def metadata(self) -> dict[str, Any]:
        """The legacy ``ingested_data`` item for this upload."""
        return {
            "filename": self.filename,
            "extension": self.extension,
            "path": self.path,
            "ingested_at": self.ingested_at,
            "size_bytes": self.size_bytes,
        }


# --------------------------------------------------------------------------- names


def _format_size(num_bytes: int) -> str:
    """Human size in the units MAX_UPLOAD_MB uses (1 MB = 1024 * 1024 bytes)."""
    if num_bytes < 1024:
        return f"{num_bytes} bytes"
    unit, scaled = (
        ("KB", num_bytes / 1024) if num_bytes < 1024 * 1024 else ("MB", num_bytes / 1024 / 1024)
    )
    return f"{scaled:.1f}".removesuffix(".0") + f" {unit}"


def _allowed_list() -> str:
    return ", ".join(ALLOWED_EXTENSIONS) + " or plain text with no extension"


def _basename(original: str) -> str:
    """Last path component, treating both slash kinds as separators, without control chars."""
    name = original.replace("\\", "/").rsplit("/", 1)[-1]
    # Cc: NUL, newlines, escapes. Cf: bidi overrides that disguise an extension.
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    return unicodedata.normalize("NFC", name).strip()


def _split_extension(basename: str) -> tuple[str, str]:
    stem, dot, ext = basename.rpartition(".")
    if not dot:
        return basename, ""
    return stem, "." + ext.strip().lower()


def _clean_stem(stem: str) -> str:
    """Keep unicode letters, digits and marks readable; everything else becomes '_'."""
    out: list[str] = []
    for ch in stem:
        if unicodedata.category(ch)[0] in "LNM" or ch in _STEM_PUNCTUATION:
            out.append(ch)
        elif not out or out[-1] != "_":
            out.append("_")
    cleaned = "".join(out).strip("._-~ ")
    while "__" in cleaned:
        cleaned = cleaned.replace("__", "_")
    return cleaned or _FALLBACK_STEM


def _truncate(stem: str, extension: str) -> str:
    stem = stem[: max(1, MAX_NAME_CHARS - len(extension))]
    budget = MAX_NAME_BYTES - len(extension.encode())
    while len(stem.encode()) > budget:
        stem = stem[:-1]
    return stem.rstrip("._- ") or _FALLBACK_STEM


def _describe(original: str) -> str:
    """A short, printable version of the client's name for error messages."""
    shown = _basename(original) or original
    return shown if len(shown) <= 80 else shown[:77] + "..."


def safe_filename(original_filename: str) -> tuple[str, str]:
    """Return ``(safe_name, extension)`` for a client-supplied name.

    Raises UploadRejected (400 for a missing name, 415 for a disallowed type)
    so callers can check a name before reading the body.
    """
    base = _basename(original_filename or "")
    if not base:
        raise UploadRejected(400, "The upload has no file name; choose a file and try again.")
    stem, extension = _split_extension(base)
    if extension == ".":
        extension = NO_EXTENSION  # "notes." is a name without an extension
    if extension == NO_EXTENSION:
        # Accepted as plain text; save_upload checks the bytes really are text.
        return _truncate(_clean_stem(stem), extension), extension
    if extension not in ALLOWED_EXTENSIONS:
        raise UploadRejected(
            415,
            f"File '{_describe(original_filename)}' has type {extension}; "
            f"allowed types are {_allowed_list()}.",
        )
    stem = _truncate(_clean_stem(stem), extension)
    return stem + extension, extension


# --------------------------------------------------------------------------- saving


def _create_exclusive(directory: Path, name: str, extension: str) -> tuple[int, Path]:
    """Create a new file without ever replacing one; ``x.pdf`` then ``x_1.pdf``, ``x_2.pdf``..."""
    stem = name[: -len(extension)] if extension else name
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for n in range(_MAX_DUPLICATES):
        candidate = directory / (name if n == 0 else f"{stem}_{n}{extension}")
        try:
            return os.open(candidate, flags, 0o644), candidate
        except FileExistsError:
            continue
    raise UploadRejected(400, f"Too many files named '{name}' in this session; rename the file.")


def _remaining_size(stream: BinaryIO) -> int | None:
    """Bytes left in a seekable stream (werkzeug spools uploads), else None."""
    try:
        if not stream.seekable():
            return None
        pos = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(pos)
        return end - pos
    except (AttributeError, OSError, ValueError):
        return None


def _too_large(original: str, size: int | None, max_bytes: int) -> UploadRejected:
    shown = _describe(original)
    limit = _format_size(max_bytes)
    if size is None:
        what = f"larger than {limit}"
    else:
        what = _format_size(size)
        if what == limit:  # "is 20 MB; the limit is 20 MB" would read as a bug
            what, limit = f"{size:,} bytes", f"{max_bytes:,} bytes"
    return UploadRejected(413, f"File '{shown}' is {what}; the limit is {limit} (MAX_UPLOAD_MB).")


def _copy_limited(stream: _Reader, fd: int, max_bytes: int) -> int | None:
    """Copy the stream into ``fd``; return bytes written, or None once over ``max_bytes``."""
    total = 0
    while True:
        chunk = stream.read(_CHUNK_SIZE)
        if not chunk:
            return total
        total += len(chunk)
        if total > max_bytes:
            return None
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]


def save_upload(
    session_dir: Path, original_filename: str, stream: BinaryIO, max_bytes: int
) -> StoredUpload:
    """Store an upload under ``session_dir/uploaded_files`` and extract its text.

    Name and type are checked before anything is written; the size limit is
    enforced while streaming and a partial file is removed on rejection.
    """
    name, extension = safe_filename(original_filename)
    known_size = _remaining_size(stream)
    if known_size is not None and known_size > max_bytes:
        raise _too_large(original_filename, known_size, max_bytes)

    if extension == NO_EXTENSION:
        head = stream.read(_SNIFF_BYTES)
        if not _looks_like_text(head):
            raise UploadRejected(
                415,
                f"File '{_describe(original_filename)}' has no extension and is not plain "
                f"text; allowed types are {_allowed_list()}.",
            )
        body: _Reader = _Prefixed(head, stream)
    else:
        body = stream

    upload_dir = Path(session_dir) / UPLOADS_DIR_NAME
    upload_dir.mkdir(parents=True, exist_ok=True)
    fd, path = _create_exclusive(upload_dir, name, extension)
    try:
        try:
            size = _copy_limited(body, fd, max_bytes)
        finally:
            os.close(fd)
        if size is None:
            raise _too_large(original_filename, None, max_bytes)
        text, note = extract_text(path, extension)
        text_path = _write_extracted(Path(session_dir), path.name, text)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise

    return StoredUpload(
        filename=path.name,
        original_filename=original_filename,
        extension=extension,
        size_bytes=size,
        path=str(path.resolve()),
        text_path=str(text_path.resolve()),
        ingested_at=datetime.now(UTC).isoformat(),
        extraction_note=note,
    )


def _extracted_path(session_dir: Path, stored_name: str) -> Path:
    return session_dir / EXTRACTED_DIR_NAME / f"{stored_name}.txt"


def _write_extracted(session_dir: Path, stored_name: str, text: str) -> Path:
    target = _extracted_path(session_dir, stored_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target


# --------------------------------------------------------------------------- extraction


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(path)
    if reader.is_encrypted:
        reader.decrypt("")  # many "protected" PDFs only have an owner password
    pages = [(page.extract_text() or "").strip() for page in reader.pages]
    return "\n\n".join(p for p in pages if p)


def _docx_text(path: Path) -> str:
    import docx
    from docx.table import Table

    document = docx.Document(str(path))
    parts: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells: list[str] = []
                seen: set[int] = set()
                for cell in row.cells:
                    if id(cell._tc) in seen:  # merged cells repeat the same element
                        continue
                    seen.add(id(cell._tc))
                    cells.append(cell.text.strip())
                if any(cells):
                    parts.append(" | ".join(cells))
        elif block.text.strip():
            parts.append(block.text)
    return "\n".join(parts)


def _xlsx_text(path: Path) -> str:
    """Each sheet under a heading, one line per non-empty row, cells joined by " | "."""
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    parts: list[str] = []
    try:
        for sheet in workbook.worksheets:
            lines: list[str] = []
            for n, row in enumerate(sheet.iter_rows(values_only=True)):
                if n >= MAX_SHEET_ROWS:
                    lines.append(f"[... rows after {MAX_SHEET_ROWS:,} omitted ...]")
                    break
                cells = ["" if v is None else str(v).strip() for v in row]
                while cells and not cells[-1]:
                    cells.pop()
                if any(cells):
                    lines.append(" | ".join(cells))
            if lines:
                parts.append(f"## Sheet: {sheet.title}\n" + "\n".join(lines))
    finally:
        workbook.close()
    return "\n\n".join(parts)


def _pptx_text(path: Path) -> str:
    """Each slide's text (text boxes, tables, groups) and its speaker notes."""
    from pptx import Presentation

    def shape_lines(shape: Any) -> list[str]:
        lines: list[str] = []
        if getattr(shape, "has_text_frame", False) and shape.text_frame.text.strip():
            lines.append(shape.text_frame.text.strip())
        if getattr(shape, "has_table", False):
            for row in shape.table.rows:
                cells = [c.text.strip() for c in row.cells]
                if any(cells):
                    lines.append(" | ".join(cells))
        for inner in getattr(shape, "shapes", None) or []:  # group shapes
            lines += shape_lines(inner)
        return lines

    parts: list[str] = []
    for number, slide in enumerate(Presentation(str(path)).slides, start=1):
        lines = [line for shape in slide.shapes for line in shape_lines(shape)]
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                lines.append(f"Notes: {notes}")
        if lines:
            parts.append(f"## Slide {number}\n" + "\n".join(lines))
    return "\n\n".join(parts)


def _html_text(path: Path) -> str:
    """The visible text of a page: scripts, styles and templates dropped, blocks on lines."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(Path(path).read_bytes(), "html.parser")
    for hidden in soup(["script", "style", "noscript", "template", "head"]):
        if hidden.name == "head" and soup.title is not None:
            title = soup.title.get_text(" ", strip=True)
            hidden.replace_with(soup.new_string(f"{title}\n") if title else "")
            continue
        hidden.decompose()
    lines = (" ".join(line.split()) for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


class _Prefixed:
    """A stream whose first bytes were already read (to sniff them) and are handed out again."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            chunk, self._head = self._head, b""
            return chunk
        return self._rest.read(size)


def _looks_like_text(head: bytes) -> bool:
    """No NUL byte in the first few KB and (nearly) valid UTF-8: what a text file is."""
    if b"\x00" in head:
        return False
    decoded = head.decode("utf-8", errors="replace")
    # A multi-byte character cut at the sniff boundary is not a sign of binary.
    return decoded.count("\ufffd") <= max(2, len(decoded) // 100)


_EXTRACTORS = {
    ".pdf": _pdf_text,
    ".docx": _docx_text,
    ".xlsx": _xlsx_text,
    ".pptx": _pptx_text,
    ".html": _html_text,
    ".htm": _html_text,
}


def extract_text(path: Path, extension: str) -> tuple[str, str | None]:
    """Return ``(text, note)``; on failure the text is empty and the note says why.

    A file we cannot read is still a valid upload (the user may re-save it),
    so failures are logged, not raised.
    """
    try:
        extractor = _EXTRACTORS.get(extension)
        if extractor is not None:
            return extractor(path), None
        return Path(path).read_bytes().decode("utf-8-sig", errors="replace"), None
    except Exception as exc:  # the document libraries raise many unrelated error types
        note = f"Text could not be extracted from '{Path(path).name}': {type(exc).__name__}"
        logger.warning("%s (%s)", note, exc)
        return "", note


# --------------------------------------------------------------------------- reading back


def _safe_stored_name(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    name = value.replace("\\", "/").rsplit("/", 1)[-1]
    if name in ("", ".", "..") or "\x00" in name:
        return None
    return name


def _text_for(session_dir: Path, item: Mapping[str, Any]) -> str | None:
    name = _safe_stored_name(item.get("filename"))
    if name is not None:
        extracted = _extracted_path(session_dir, name)
        if extracted.is_file():
            return extracted.read_text(encoding="utf-8", errors="replace")
    content = item.get("content")
    if isinstance(content, str):
        return content  # sessions from before extracted/ existed
    if name is not None:
        upload = session_dir / UPLOADS_DIR_NAME / name
        ext = _split_extension(name)[1]
        if upload.is_file() and (ext in ALLOWED_EXTENSIONS or ext == NO_EXTENSION):
            return extract_text(upload, ext)[0]
    return None


def load_context_text(session_dir: Path, uploads: list[dict[str, Any]]) -> str:
    """Concatenate the uploads' texts, each under a ``### File: <filename>`` header.

    Only files inside ``session_dir`` are read (never the stored ``path``, which
    may come from another machine); unavailable files are skipped with a warning.
    """
    session_dir = Path(session_dir)
    sections: list[str] = []
    for item in uploads:
        if not isinstance(item, Mapping):
            logger.warning("Skipping upload entry that is not a mapping: %r", item)
            continue
        label = _basename(str(item.get("filename") or "")) or "(unnamed)"
        try:
            text = _text_for(session_dir, item)
        except OSError as exc:
            logger.warning("Skipping upload %r: %s", label, exc)
            continue
        if text is None:
            logger.warning("Skipping upload %r: no extracted text or file found", label)
            continue
        body = text.strip() or "(no text could be extracted from this file)"
        sections.append(f"### File: {label}\n{body}")
    return "\n\n".join(sections)


def remove_session_files(session_dir: Path) -> None:
    """Delete the session's whole directory tree; a missing tree is not an error."""
    target = Path(session_dir)
    if target.is_symlink():
        target.unlink()  # never follow a link out of the sessions root
        return
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(target)
