"""The labelling server is closed: it serves only the waiting round's cells, only to its own
page, and answers every malformed request with a 4xx and a JSON reason (issue 29, 1)."""

import http.client
import json
import os
import re
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import pytest
from test_person import own_config

from rlmba_jax.data.arrays import write_demo_folder
from rlmba_jax.experiment import LabelsNeeded, run
from rlmba_jax.person import page


@pytest.fixture(scope="module")
def server(tmp_path_factory):
  """A page serving a waiting round 0 of an own-data run, started from a folder that
  holds a secret (as ``cd ~; python -m rlmba_jax.label`` would)."""
  root = tmp_path_factory.mktemp("label")
  folder = write_demo_folder(str(root / "data"), pool_size=60, val_size=30, test_size=30)
  workdir = str(root / "run")
  with pytest.raises(LabelsNeeded):
    run(own_config(folder, **{"al.rounds": 1}), workdir)
  (root / ".ssh").mkdir()
  (root / ".ssh" / "id_rsa").write_text("SECRET KEY")
  (root / "data" / "private.txt").write_text("not a query")
  here = os.getcwd()
  os.chdir(root)
  try:
    srv = page.serve(workdir, port=0)
  finally:
    os.chdir(here)
  thread = threading.Thread(target=srv.serve_forever, daemon=True)
  thread.start()
  yield srv, workdir
  srv.shutdown()
  srv.server_close()


def _request(srv, method, path, body=b"", headers=None, host=None):
  port = srv.server_address[1]
  conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
  conn.putrequest(method, path, skip_host=True)
  conn.putheader("Host", host or f"127.0.0.1:{port}")
  for k, v in (headers or {}).items():
    conn.putheader(k, v)
  if method == "POST" and "Content-Length" not in (headers or {}):
    conn.putheader("Content-Length", str(len(body)))
  conn.endheaders()
  if body:
    conn.send(body)
  response = conn.getresponse()
  data = response.read()
  conn.close()
  return response.status, data


def _token(srv):
  status, html = _request(srv, "GET", "/")
  assert status == 200
  return re.search(rb'name="token" content="([^"]+)"', html).group(1).decode()


def _post(srv, obj, **headers):
  body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
  headers = {"X-Labelling-Token": _token(srv), **headers}
  return _request(srv, "POST", "/api/answer", body, headers)


def test_serves_no_file_but_the_rounds_cells(server):
  srv, _ = server
  for cell in (".ssh/id_rsa", "../.ssh/id_rsa", "private.txt", "/etc/passwd"):
    status, body = _request(srv, "GET", f"/api/content?cell={cell}")
    assert status == 404 and b"SECRET" not in body and json.loads(body)["error"]
  status, state = _request(srv, "GET", "/api/round")
  cell = json.loads(state)["items"][0]["fields"]["fou"]
  assert _request(srv, "GET", f"/api/content?cell={cell}")[0] == 200
  # a row the array does not have: 404 with a reason, not a dropped connection
  name = cell.split("[")[0]
  status, body = _request(srv, "GET", f"/api/content?cell={name}[99999]")
  assert status == 404


def test_foreign_hosts_origins_and_tokens_are_refused(server):
  srv, workdir = server
  assert _request(srv, "GET", "/api/round", host="evil.example")[0] == 403
  assert _request(srv, "GET", "/", host=f"evil.example:{srv.server_address[1]}")[0] == 403
  ids = [i["id"] for i in json.loads(_request(srv, "GET", "/api/round")[1])["items"]]
  status, body = _post(srv, {"id": ids[0], "label": "one"}, Origin="http://evil.example")
  assert status == 403 and b"Origin" in body
  status, body = _request(srv, "POST", "/api/answer",
                          json.dumps({"id": ids[0], "label": "one"}).encode(),
                          {"Content-Type": "text/plain"})  # no token: a foreign page
  assert status == 403 and b"token" in body
  assert not os.path.exists(os.path.join(workdir, "labels", "round_000.csv"))
  port = srv.server_address[1]
  status, _ = _post(srv, {"id": ids[0], "label": "one"}, Origin=f"http://127.0.0.1:{port}")
  assert status == 200
  assert _post(srv, {"id": ids[0], "label": ""})[0] == 200  # cleared again


@pytest.mark.parametrize("body,headers,status", [
    (b"[1, 2]", {}, 400), (b'{"id": null}', {}, 400), (b'{"id": 1e400}', {}, 400),
    (b'{"id": 1.5}', {}, 400), (b"\xff\xfe", {}, 400), (b"{", {}, 400),
    (b"{}", {"Content-Length": "ten"}, 400), (b"", {"Content-Length": "157286400"}, 413),
    (b'{"id": 3, "label": 7}', {}, 400),
])
def test_malformed_requests_get_a_4xx_and_a_reason(server, body, headers, status):
  srv, _ = server
  got, text = _post(srv, body, **headers)
  assert got == status
  assert json.loads(text)["error"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300), path=st.sampled_from(["/api/answer", "/api/close",
                                                           "/api/x"]))
def test_random_bodies_never_drop_the_connection(server, body, path):
  srv, _ = server
  if path == "/api/close":
    return  # closing the round is a valid request for any body; tested elsewhere
  headers = {"X-Labelling-Token": _token(srv)}
  status, text = _request(srv, "POST", path, body, headers)
  assert 200 <= status < 500
  json.loads(text)
