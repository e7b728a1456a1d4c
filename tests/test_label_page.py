"""The labelling page in a real headless browser: label a round through it, then resume.

Needs Chromium and ChromeDriver (Debian: ``apt-get install chromium chromium-driver``, which
``.ci/run`` does) and ``selenium`` (the ``test`` extra). Skipped without them, unless
``RLMBA_REQUIRE_BROWSER=1`` (CI) turns the skip into a failure.
"""

import contextlib
import csv
import os
import shutil
import threading
import time

import pytest
from test_person import own_config

from conftest import read_ledger
from rlmba_jax.data.arrays import write_demo_folder
from rlmba_jax.experiment import LabelsNeeded, run
from rlmba_jax.person import files, page


pytestmark = pytest.mark.slow  # a browser and end-to-end runs

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _browser():
  try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
  except ImportError as e:
    _missing(f"selenium is not installed ({e})")
  if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
    _missing("Chromium / ChromeDriver are not installed (apt-get install chromium "
             "chromium-driver)")
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"):
    options.add_argument(flag)
  return webdriver.Chrome(service=Service(DRIVER), options=options)


def _missing(why):
  if os.environ.get("RLMBA_REQUIRE_BROWSER") == "1":
    pytest.fail(why)
  pytest.skip(why)


@contextlib.contextmanager
def _page(workdir):
  """A browser on the labelling page of ``workdir``'s waiting round; both closed after."""
  driver = _browser()
  server = page.serve(workdir, port=0)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  try:
    driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
    yield driver
  finally:
    driver.quit()
    server.shutdown()
    server.server_close()


def _wait(predicate, timeout=20.0):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return
    time.sleep(0.05)
  raise AssertionError("timed out")


def test_label_a_round_in_the_browser_then_resume(tmp_path):
  from selenium.webdriver.common.by import By

  folder = write_demo_folder(str(tmp_path / "data"), pool_size=120, val_size=60,
                             test_size=60)
  with open(os.path.join(folder, "truth.csv")) as f:
    truth = {int(r["id"]): r["label"] for r in csv.DictReader(f)}
  workdir = str(tmp_path / "run")
  config = own_config(folder, **{"al.rounds": 1})
  person = files.SimulatedPerson(truth)
  with pytest.raises(LabelsNeeded, match="round 0"):
    run(config, workdir)
  person(files.queries_path(workdir, 0), files.labels_path(workdir, 0), 0)
  with pytest.raises(LabelsNeeded, match="round 1"):
    run(config, workdir)  # round 0 ingested; round 1 waits for the page
  asked, _ = files.read_queries(files.queries_path(workdir, 1))
  driver = _browser()
  server = page.serve(workdir, port=0)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
    _wait(lambda: "of 10 answered" in driver.find_element(By.ID, "status").text)
    # the item shows its modalities: the image file, and a plot of each feature vector
    images = driver.find_elements(By.CSS_SELECTOR, "#item img")
    assert len(images) == 3
    _wait(lambda: all(driver.execute_script("return arguments[0].naturalWidth", i) > 0
                      for i in images))
    # the model's guess is preselected
    guess = driver.find_element(By.CSS_SELECTOR, "#classes button.selected").text
    assert guess.split(" ", 1)[1] in truth.values()
    # named classes: each button shows the key that saves it, in brackets
    first = driver.find_element(By.XPATH, "//button[@data-label='zero']").text
    assert first == "[1] zero"
    body = driver.find_element(By.TAG_NAME, "body")
    names = files.read_class_names(workdir)
    for n, i in enumerate(asked):
      if n == 3:
        driver.find_element(By.ID, "skip").click()  # a button
      elif n == 4:
        body.send_keys("s")  # the key
      elif n % 2:
        driver.find_element(By.XPATH, f"//button[@data-label='{truth[i]}']").click()
      else:
        body.send_keys(str((names.index(truth[i]) + 1) % 10))
      _wait(lambda: f"{n + 1} of 10 answered" in driver.find_element(By.ID, "status").text)
    # saved as it went: the labels file holds every answer (written atomically)
    with open(files.labels_path(workdir, 1)) as f:
      saved = {int(r["id"]): r["label"] for r in csv.DictReader(f)}
    assert saved == {i: ("skip" if n in (3, 4) else truth[i]) for n, i in enumerate(asked)}
    assert "Run the experiment" in driver.find_element(By.ID, "done").text
  finally:
    driver.quit()
    server.shutdown()
    server.server_close()
  summary = run(config, workdir)
  entry = read_ledger(workdir)[1]
  assert entry["ids"] == asked and entry["skipped"] == [asked[3], asked[4]]
  assert entry["annotators"][str(asked[0])] == "page"
  assert summary["final"]["num_labeled"] == 10 + 8


def test_the_page_refuses_what_the_round_did_not_ask(tmp_path):
  folder = write_demo_folder(str(tmp_path / "data"), pool_size=120, val_size=60,
                             test_size=60)
  workdir = str(tmp_path / "run")
  with pytest.raises(LabelsNeeded):
    run(own_config(folder, **{"al.rounds": 1}), workdir)
  session = page.LabellingSession(workdir)
  asked = [item["id"] for item in session.state()["items"]]
  with pytest.raises(ValueError, match="not a query"):
    session.answer(5, "one")
  with pytest.raises(ValueError, match="not a class"):
    session.answer(asked[0], "eleven")
  with pytest.raises(FileNotFoundError):
    session.content("../../etc/passwd")
  assert session.answer(asked[0], "one") == {"answered": 1, "total": 10}
  assert session.answer(asked[0], "") == {"answered": 0, "total": 10}
  kind, body = session.content(session.state()["items"][0]["fields"]["fou"])
  assert kind == "image/svg+xml" and b"76 features" in body


def test_keys_save_the_class_they_show_and_answers_can_be_undone(tmp_path):
  """Classes named by one character are their own keys (on digits pressing 4 saves "4";
  it saved "3" before); every answer is echoed and Backspace takes it back."""
  from selenium.webdriver.common.by import By

  digits = tuple(str(d) for d in range(10))
  folder = write_demo_folder(str(tmp_path / "data"), pool_size=120, val_size=60,
                             test_size=60, class_names=digits)
  with open(os.path.join(folder, "truth.csv")) as f:
    truth = {int(r["id"]): r["label"] for r in csv.DictReader(f)}
  workdir = str(tmp_path / "run")
  with pytest.raises(LabelsNeeded, match="round 0"):
    run(own_config(folder, **{"al.rounds": 1}), workdir)
  asked, _ = files.read_queries(files.queries_path(workdir, 0))
  with _page(workdir) as driver:
    _wait(lambda: "of 10 answered" in driver.find_element(By.ID, "status").text)
    buttons = driver.find_elements(By.CSS_SELECTOR, "#classes button")
    assert [b.text for b in buttons] == list(digits)  # no position numbers to confuse
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys("4")
    _wait(lambda: "saved: 4" in driver.find_element(By.ID, "saved").text)
    body.send_keys(truth[asked[1]])
    _wait(lambda: "2 of 10 answered" in driver.find_element(By.ID, "status").text)
    with open(files.labels_path(workdir, 0)) as f:
      saved = {int(r["id"]): r["label"] for r in csv.DictReader(f)}
    assert saved == {asked[0]: "4", asked[1]: truth[asked[1]]}
    body.send_keys("\ue003")  # Backspace: undo the last answer
    _wait(lambda: "1 of 10 answered" in driver.find_element(By.ID, "status").text)
    with open(files.labels_path(workdir, 0)) as f:
      assert {int(r["id"]) for r in csv.DictReader(f)} == {asked[0]}
    body.send_keys("s")
    _wait(lambda: "skipped" in driver.find_element(By.ID, "saved").text)
    driver.find_element(By.ID, "prev").click()
    _wait(lambda: "skipped" in driver.find_element(By.CSS_SELECTOR, "#item h3").text)


def test_export_writes_every_answer_the_ledger_holds(tmp_path):
  folder = write_demo_folder(str(tmp_path / "data"), pool_size=80, val_size=40,
                             test_size=40)
  with open(os.path.join(folder, "truth.csv")) as f:
    truth = {int(r["id"]): r["label"] for r in csv.DictReader(f)}
  workdir = str(tmp_path / "run")
  config = own_config(folder, **{"al.rounds": 1})
  person = files.SimulatedPerson(truth, skip=0.2, annotator="ana")
  for r in (0, 1):
    with pytest.raises(LabelsNeeded, match=f"round {r}"):
      run(config, workdir)
    person(files.queries_path(workdir, r), files.labels_path(workdir, r), r)
  run(config, workdir)
  out = str(tmp_path / "answers.csv")
  count = page.export_answers(workdir, out)
  with open(out) as f:
    rows = list(csv.DictReader(f))
  ledger = read_ledger(workdir)
  answered = [(i, l) for e in ledger for i, l in zip(e["ids"], e["labels"]) if l is not None]
  assert count == len(rows) == len(answered) and count < 20  # skipped ones left out
  assert all(truth[int(r["id"])] == r["label"] and r["annotator"] == "ana" for r in rows)
  assert {r["round"] for r in rows} == {"0", "1"}


def test_av_digits_items_show_their_spectrogram_image_and_recording(tmp_path):
  """A built-in data set on the page: every item's stored log-mel and image load as
  images, its FSDD recording in an audio player, and the stopping signal is shown."""
  from selenium.webdriver.common.by import By
  from test_av_digits import person_config

  workdir = str(tmp_path / "run")
  with pytest.raises(LabelsNeeded, match="round 1"):
    run(person_config(), workdir)
  with _page(workdir) as driver:
    _wait(lambda: "of 3 answered" in driver.find_element(By.ID, "status").text)
    for _ in range(3):
      _wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#item img")) == 2 and all(
          driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                                img) for img in driver.find_elements(By.CSS_SELECTOR,
                                                                     "#item img")))
      audio = driver.find_element(By.CSS_SELECTOR, "#item audio")
      fetched = driver.execute_async_script(
          "const done=arguments[1]; fetch(arguments[0].src).then(r=>r.arrayBuffer()"
          ".then(b=>done([r.status, b.byteLength, r.headers.get('content-type')])));", audio)
      assert fetched[0] == 200 and fetched[1] > 1000 and fetched[2].startswith("audio/")
      driver.find_element(By.ID, "next").click()
    assert "When to stop: after round 0" in driver.find_element(By.ID, "stopping").text
