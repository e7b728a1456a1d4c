"""Reading the CSV files a person or a user writes (own data, answers, queries) so that any
file gets rows or one line naming the file and what is wrong with it, never a traceback.

A UTF-8 byte-order mark (Excel's "CSV UTF-8") is read as the start of the text, not as part
of the first column's name.
"""

from __future__ import annotations

import csv
import errno


def read_rows(path: str, error: type[Exception]) -> list[list[str]]:
  """The rows of ``path``; ``error`` (one line: the file and the fault) when the path is a
  folder or unreadable, the text is not UTF-8, a quote is never closed or a field is longer
  than the csv module's limit."""
  line = 0
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      reader = csv.reader(f)
      rows = []
      for row in reader:
        line = reader.line_num
        rows.append(row)
      return rows
  except IsADirectoryError:
    raise error(f"{path} is a folder, not a CSV file; put the file there, or remove the "
                "folder. Nothing was changed.") from None
  except UnicodeDecodeError as e:
    raise error(f"{path} is not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8 "
                "(CSV UTF-8). Nothing was changed.") from None
  except csv.Error as e:
    raise error(f"{path}, line {line + 1}: {e} (a field over {csv.field_size_limit()} "
                "characters, or a quote never closed). Nothing was changed.") from None
  except OSError as e:
    if e.errno == errno.ENOENT:
      raise error(f"{path} does not exist. Nothing was changed.") from None
    raise error(f"{path} cannot be read ({e.strerror}). Nothing was changed.") from None


def as_dicts(rows: list[list[str]]) -> list[dict[str, str]]:
  """``csv.DictReader``'s view of rows already read."""
  if not rows:
    return []
  header = rows[0]
  return [dict(zip(header, row)) for row in rows[1:] if row]


# -- example ids -----------------------------------------------------------------------------
# An example id is an integer (0 <= id < 2^63) or, where a data set's ids are not all
# integers, the text as given (a file name, a database key). Files hold ids as text: an id
# read back is an int when its text is an integer written the canonical way ("12", not
# "012"), else the text; lookups compare ``str(id)``, so "12" finds 12 and the reverse.
MAX_ID_CHARS = 200


def parse_id(text: str) -> int | str:
  """An id as a file writes it -> ``int`` (canonical integer below 2^63) or the text.
  ``ValueError`` for an empty id, one over ``MAX_ID_CHARS`` characters or one holding
  control characters."""
  text = text.strip()
  if not text:
    raise ValueError("an empty id")
  if len(text) > MAX_ID_CHARS:
    raise ValueError(f"id {text[:40]!r}... is longer than {MAX_ID_CHARS} characters")
  if any(ord(c) < 32 or ord(c) == 127 for c in text):
    raise ValueError(f"id {text[:40]!r} holds control characters")
  if text.isdigit() and text.isascii() and str(int(text)) == text and int(text) < 2 ** 63:
    return int(text)
  return text


def as_id(value) -> int | str:
  """An id from an id array or a ledger line (numpy or Python) as a plain int or str."""
  if isinstance(value, str):
    return str(value)
  if isinstance(value, bool):
    raise ValueError(f"id {value!r} is not an example id")
  return int(value)
