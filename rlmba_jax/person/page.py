"""The labelling page's server: the waiting round of a workdir (``LabellingSession``), the
request handler, and ``serve`` (the command is ``python -m rlmba_jax.label``, whose
docstring says what the page does and how it is kept closed to everything else).

The page itself is ``page.html`` beside this module (package data); the server writes its
session token into it.
"""

from __future__ import annotations

import csv
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import importlib.resources
import io
import json
import mimetypes
import os
import re
import secrets
import threading
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from rlmba_jax.csv_files import parse_id
from rlmba_jax.person import files


PAGE = (importlib.resources.files("rlmba_jax.person") / "page.html").read_text(
    encoding="utf-8")

MAX_BODY = 64 * 1024  # bytes of a POST body; an answer is a few dozen
_ARRAY_CELL = re.compile(r"^(?P<file>[^\[\]:]+?)(?::(?P<key>[^\[\]]+))?\[(?P<row>\d+)\]$")


class LabellingSession:
  """The waiting round of one workdir: its queries, the answers so far, and the files to
  show. All writes go through ``answer`` / ``close`` under one lock."""

  def __init__(self, workdir: str):
    self.workdir = os.path.abspath(workdir)
    if not os.path.isdir(os.path.join(self.workdir, "queries")):
      raise FileNotFoundError(
          f"{self.workdir} has no queries/ folder: start the run with "
          "config.al.oracle='person' first; it writes the queries and stops (exit code 3)")
    with open(os.path.join(self.workdir, "config.json"), encoding="utf-8") as f:
      self.config = json.load(f)
    manual_dir = self.config["data"].get("manual_dir") or ""
    # The run's data folder as it recorded it (a relative one from where the server
    # starts, as the run read it), or none: then no file is served at all.
    self.manual_dir = os.path.realpath(manual_dir) if manual_dir else None
    self.token = secrets.token_urlsafe(24)  # the page's proof that a POST came from it
    self.lock = threading.Lock()
    self._arrays: dict[tuple[str, str | None], Any] = {}

  # -- the round ---------------------------------------------------------------------------
  def round_index(self) -> int:
    rounds = [int(m.group(1)) for f in os.listdir(os.path.join(self.workdir, "queries"))
              if (m := re.fullmatch(r"round_(\d+)\.csv", f))]
    if not rounds:
      raise FileNotFoundError(f"{self.workdir}/queries holds no round_NNN.csv yet")
    return max(rounds)

  def ingested(self, r: int) -> bool:
    path = os.path.join(self.workdir, "ledger.jsonl")
    if not os.path.exists(path):
      return False
    with open(path, encoding="utf-8") as f:
      return any(json.loads(l).get("round") == r for l in f if l.strip())

  def state(self) -> dict[str, Any]:
    r = self.round_index()
    ids, rows = files.read_queries(files.queries_path(self.workdir, r))
    answers = self._answers(r)
    items = [{"id": i, "answer": answers.get(i, ""), "fields": row} for i, row in
             zip(ids, rows)]
    return {"round": r, "classes": list(files.read_class_names(self.workdir)),
            "items": items, "answered": sum(i in answers for i in ids), "total": len(ids),
            "closed": os.path.exists(files.closed_path(self.workdir, r)),
            "ingested": self.ingested(r), "labels_file": files.labels_path(self.workdir, r),
            "stopping": self.stopping()}

  def stopping(self) -> str:
    """The latest trained round's stopping signals, in words ('' before any)."""
    from rlmba_jax.experiment.stopping import stop_reason  # pylint: disable=g-import-not-at-top
    path = os.path.join(self.workdir, "rounds.jsonl")
    try:
      with open(path, encoding="utf-8") as f:
        lines = [l for l in f if l.strip()]
      last = json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
      return ""
    if not isinstance(last, dict) or "stopping" not in last:
      return ""
    return f"after round {last.get('round')}: {stop_reason(last)}"

  def _answers(self, r: int) -> dict[int, str]:
    return {i: a.label for i, a in files.saved_answers(files.labels_path(self.workdir, r)
                                                        ).items()}

  def answer(self, example_id: int, label: str) -> dict[str, Any]:
    """Saves (or, with an empty label, clears) one answer of the waiting round."""
    with self.lock:
      r = self.round_index()
      if self.ingested(r):
        raise ValueError(f"round {r} is already ingested; run the experiment's command")
      ids, _ = files.read_queries(files.queries_path(self.workdir, r))
      classes = files.read_class_names(self.workdir)
      if example_id not in ids:
        raise ValueError(f"id {example_id} is not a query of round {r}")
      if label and label not in classes and label != files.SKIP:
        raise ValueError(f"{label!r} is not a class name or {files.SKIP!r}")
      answers = self._answers(r)
      if label:
        answers[example_id] = label
      else:
        answers.pop(example_id, None)
      files.write_answers(files.labels_path(self.workdir, r),
                           [(i, answers[i], "page") for i in ids if i in answers])
      return {"answered": len(answers), "total": len(ids)}

  def close(self) -> dict[str, Any]:
    with self.lock:
      r = self.round_index()
      path = files.closed_path(self.workdir, r)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with open(path, "w", encoding="utf-8") as f:
        f.write("closed from the labelling page\n")
      return {"closed": True, "round": r}

  # -- what an item shows --------------------------------------------------------------------
  def query_cells(self) -> set[str]:
    """Every value the waiting round's queries show (the only cells ever served)."""
    ids, rows = files.read_queries(files.queries_path(self.workdir, self.round_index()))
    del ids
    return {str(v) for row in rows for v in row.values() if v not in (None, "")}

  def content(self, cell: str) -> tuple[str, bytes]:
    """(content type, body) of one query cell: a raw file under the run's data folder, or
    one row of an array drawn as an SVG plot (vectors) or a PNG (images); the rows of a
    built-in data set's picks come from the run's own ``queries/round_NNN_items.npz``.
    Anything that is not a cell of the waiting round, or not under its folder, is not
    found."""
    if cell not in self.query_cells():
      raise FileNotFoundError(cell)
    base = self.workdir if cell.startswith("queries/") else self.manual_dir
    if base is None:
      raise FileNotFoundError(cell)
    m = _ARRAY_CELL.match(cell)
    if m:
      x = self._row(base, m.group("file"), m.group("key"), int(m.group("row")))
      if x.ndim >= 2:
        return "image/png", _png(x)
      return "image/svg+xml", _plot(x).encode()
    path = os.path.realpath(os.path.join(base, cell))
    if not path.startswith(os.path.realpath(base) + os.sep) or not os.path.isfile(path):
      raise FileNotFoundError(cell)
    with open(path, "rb") as f:
      return mimetypes.guess_type(path)[0] or "application/octet-stream", f.read()

  def _row(self, base: str, name: str, key: str | None, row: int) -> np.ndarray:
    path = os.path.realpath(os.path.join(base, name))
    if not path.startswith(os.path.realpath(base) + os.sep):
      raise FileNotFoundError(name)
    if (path, key) not in self._arrays:
      try:
        self._arrays[(path, key)] = (np.load(path, mmap_mode="r") if key is None
                                     else _items_array(path, key))
      except (OSError, ValueError, KeyError) as e:
        raise FileNotFoundError(f"{name}: {e}") from None
    array = self._arrays[(path, key)]
    if not 0 <= row < len(array):
      raise FileNotFoundError(f"{name} has no row {row}")
    return np.asarray(array[row], np.float32)


def export_answers(workdir: str, path: str) -> int:
  """Every answer a person gave, as the ledger records it (the ledger is checked: an
  edited line is refused), to ``path`` as ``id,label,annotator,round``; skipped and
  unanswered items are left out. Returns the number of answers written."""
  from rlmba_jax.experiment.ledger import Ledger  # pylint: disable=g-import-not-at-top
  entries = Ledger(os.path.join(workdir, "ledger.jsonl")).read()
  rows = []
  for entry in entries:
    annotators = entry.get("annotators") or {}
    for example_id, answer in zip(entry["ids"], entry.get("labels") or ()):
      if answer is not None:
        rows.append((example_id, answer, annotators.get(str(example_id), ""), entry["round"]))
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(["id", "label", "annotator", "round"])
  writer.writerows(rows)
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(buffer.getvalue())
  os.replace(tmp, path)
  return len(rows)


def _plot(x: np.ndarray, width: int = 320, height: int = 90) -> str:
  """A feature vector as a small SVG line plot."""
  x = np.nan_to_num(x.reshape(-1))
  lo, hi = float(x.min()), float(x.max())
  span = hi - lo or 1.0
  xs = np.linspace(4, width - 4, len(x)) if len(x) > 1 else np.asarray([width / 2])
  ys = height - 4 - (x - lo) / span * (height - 8)
  points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys))
  return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
          f'<rect width="100%" height="100%" fill="#fafafa" stroke="#ccc"/>'
          f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{points}"/>'
          f'<text x="4" y="12" font-size="10" fill="#666">{len(x)} features, '
          f'{lo:.3g} to {hi:.3g}</text></svg>')


def _items_array(path: str, key: str) -> np.ndarray:
  """``key``'s rows of an ``.npz`` as the page draws them: a modality the file names under
  ``files.ORIGIN_LOWER_KEY`` (a spectrogram) with each example's row 0 at the bottom."""
  with np.load(path) as stored:
    array = stored[key]
    lower = stored[files.ORIGIN_LOWER_KEY] if files.ORIGIN_LOWER_KEY in stored.files else ()
  return array[:, ::-1] if key in {str(v) for v in lower} else array


def _png(x: np.ndarray) -> bytes:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  x = np.asarray(x, np.float32)
  if x.ndim == 4:  # a clip: its first frame
    x = x[0]
  if x.ndim == 3 and x.shape[-1] == 1:
    x = x[..., 0]
  lo, hi = float(x.min()), float(x.max())
  img = np.uint8(255 * (x - lo) / ((hi - lo) or 1.0))
  image = Image.fromarray(img if img.ndim == 2 else img[..., :3])
  scale = max(1, 128 // max(image.size))
  image = image.resize((image.size[0] * scale, image.size[1] * scale), Image.NEAREST)
  out = io.BytesIO()
  image.save(out, format="PNG")
  return out.getvalue()


class RequestRefused(Exception):
  """A request the server will not serve: ``status`` and the reason, sent as JSON."""

  def __init__(self, status: int, reason: str):
    super().__init__(reason)
    self.status = status


def _host_names(host: str) -> set[str]:
  names = {"127.0.0.1", "localhost", "[::1]"}
  if host not in ("", "0.0.0.0", "::"):
    names.add(f"[{host}]" if ":" in host else host)
  return {n.lower() for n in names}


class LabellingHandler(BaseHTTPRequestHandler):
  """Serves one ``LabellingSession``: the page, its round, the query cells, and the answers
  (``make_handler`` binds the session, the host names and the port)."""

  session: LabellingSession
  names: set[str]
  port: int = 0

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    del format, args  # quiet: a person is labelling, not reading logs

  def _send(self, status: int, body: bytes, content_type: str) -> None:
    self.send_response(status)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(len(body)))
    self.send_header("Cache-Control", "no-store")
    self.end_headers()
    self.wfile.write(body)

  def _json(self, obj: Any, status: int = 200) -> None:
    self._send(status, json.dumps(obj).encode(), "application/json")

  def _check_host(self) -> str:
    """The request's Host, if it names this server; else refused (DNS rebinding)."""
    given = (self.headers.get("Host") or "").strip().lower()
    name, _, given_port = given.rpartition(":") if not given.endswith("]") else (given, "", "")
    if not name:
      name, given_port = given, ""
    if name not in self.names or (self.port and given_port and
                                     given_port != str(self.port)):
      raise RequestRefused(HTTPStatus.FORBIDDEN, f"Host {given!r} is not this server; open "
                           "the page at the address the server printed")
    return given

  def _guarded(self, handle) -> None:
    try:
      self._check_host()
      handle()
    except RequestRefused as e:
      self._json({"error": str(e)}, e.status)
    except FileNotFoundError as e:
      self._json({"error": f"not found: {e}"}, HTTPStatus.NOT_FOUND)
    except Exception as e:  # pylint: disable=broad-except  (a reason, never a dropped line)
      self._json({"error": f"{type(e).__name__}: {e}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

  def do_GET(self):  # pylint: disable=invalid-name
    self._guarded(self._get)

  def _get(self):
    url = urlparse(self.path)
    if url.path == "/":
      page = PAGE.replace("@TOKEN@", self.session.token)
      self._send(200, page.encode(), "text/html; charset=utf-8")
    elif url.path == "/api/round":
      self._json(self.session.state())
    elif url.path == "/api/content":
      content_type, body = self.session.content(parse_qs(url.query).get("cell", [""])[0])
      self._send(200, body, content_type)
    else:
      self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)

  def do_POST(self):  # pylint: disable=invalid-name
    self._guarded(self._post)

  def _body(self) -> dict[str, Any]:
    """The request's JSON object, after the checks a write needs (origin, token, size)."""
    host = self._check_host()
    origin = self.headers.get("Origin")
    if origin is not None and origin.lower() != f"http://{host}":
      raise RequestRefused(HTTPStatus.FORBIDDEN, f"Origin {origin!r} is not this page")
    if not secrets.compare_digest(self.headers.get("X-Labelling-Token", ""),
                                  self.session.token):
      raise RequestRefused(HTTPStatus.FORBIDDEN, "answers are taken from the labelling "
                           "page only (missing or wrong session token); reload the page")
    length = self.headers.get("Content-Length", "0").strip()
    if not length.isdigit():
      raise RequestRefused(HTTPStatus.BAD_REQUEST, f"Content-Length {length!r} is not a "
                           "number of bytes")
    if int(length) > MAX_BODY:
      self.close_connection = True
      raise RequestRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"a body of {length} bytes; at most {MAX_BODY}")
    raw = self.rfile.read(int(length))
    try:
      body = json.loads(raw.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError) as e:
      raise RequestRefused(HTTPStatus.BAD_REQUEST, f"the body is not JSON ({e})") from None
    if not isinstance(body, dict):
      raise RequestRefused(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
    return body

  def _post(self):
    body = self._body()
    try:
      if self.path == "/api/answer":
        example_id = body.get("id")
        if isinstance(example_id, bool) or not isinstance(example_id, (int, float, str)):
          raise ValueError(f"id {example_id!r} is not an example id")
        if isinstance(example_id, float) and not example_id.is_integer():
          raise ValueError(f"id {example_id!r} is not an example id")
        label = body.get("label", "")
        if not isinstance(label, str):
          raise ValueError(f"label {label!r} is not a class name")
        self._json(self.session.answer(parse_id(str(example_id)) if isinstance(example_id, str)
                                  else int(example_id), label))
      elif self.path == "/api/close":
        self._json(self.session.close())
      else:
        self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
    except (ValueError, KeyError, TypeError, OverflowError) as e:
      raise RequestRefused(HTTPStatus.BAD_REQUEST, str(e)) from None


def make_handler(session: LabellingSession, host: str = "127.0.0.1", port: int = 0):
  """The request handler class serving ``session`` on ``host:port`` (the port the server
  actually bound; 0 accepts any, for tests that bind their own handler)."""
  return type("Handler", (LabellingHandler,),
              {"session": session, "names": _host_names(host), "port": port})


def serve(workdir: str, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
  """A server for ``workdir``'s waiting round (call ``serve_forever``; port 0: any free)."""
  session = LabellingSession(workdir)
  server = ThreadingHTTPServer((host, port), make_handler(session, host, port))
  # The port actually bound (port 0 picks one): the Host header must name it.
  server.RequestHandlerClass = make_handler(session, host, server.server_address[1])
  return server
