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
