r"""A labelling page for a run that waits for a person (``config.al.oracle="person"``).

  python -m rlmba_jax.label --workdir=runs/mine          # then open http://127.0.0.1:8765

Serves the waiting round's queries (``WORKDIR/queries/round_NNN.csv``) on localhost, one
item at a time with its modalities: images, an audio player, text, and a small plot for a
feature vector (an image array is drawn as an image). The model's guess is preselected;
keys: a class whose name is one character (digits, letters) is its own key (pressing 4
saves "4"); otherwise 1-9 and 0 pick the first ten classes as the buttons show in brackets;
Enter takes the selected class, s skips (- when a class is named s), Backspace undoes the
last answer (each answer is echoed: "saved: 4"), the arrows move. Every answer is saved at once to ``WORKDIR/labels/round_NNN.csv`` (written
atomically, so a closed browser or a killed server loses nothing); "End round" writes
``labels/round_NNN.closed``. Then run the experiment's command again: it ingests the answers
(``person.files``) and trains.

The server is closed to everything but the page it serves: it shows only the cells of the
waiting round's queries, read from the run's own data folder (``data.manual_dir`` as the
run recorded it; never the folder the server was started from); it answers only requests
whose ``Host`` is the address it listens on (or localhost), takes answers only from its own
page (same ``Origin`` and the session token the page carries), reads at most
``MAX_BODY`` bytes of a request, and answers every malformed request with a 4xx and a
JSON reason.
"""

from __future__ import annotations

import os

from rlmba_jax.person.page import export_answers, serve


def main(argv=None):
  from absl import app, flags  # pylint: disable=g-import-not-at-top

  workdir = flags.DEFINE_string("workdir", None, "The run's workdir (al.oracle='person').")
  host = flags.DEFINE_string("host", "127.0.0.1", "Address to listen on.")
  port = flags.DEFINE_integer("port", 8765, "Port (0: any free port).")
  export = flags.DEFINE_string("export", "", "Write every answer the ledger holds to this "
                               "CSV (id,label,annotator,round) and exit, serving nothing.")
  flags.mark_flag_as_required("workdir")

  def _main(args):
    del args
    if export.value:
      try:
        count = export_answers(workdir.value, export.value)
      except (OSError, ValueError) as e:
        raise SystemExit(f"cannot export the answers of {workdir.value}: {e}") from None
      print(f"{count} answers of {os.path.abspath(workdir.value)} written to {export.value}")
      return
    try:
      server = serve(workdir.value, host.value, port.value)
    except (FileNotFoundError, OSError) as e:
      raise SystemExit(f"cannot serve {workdir.value}: {e}") from None
    address = f"http://{server.server_address[0]}:{server.server_address[1]}/"
    print(f"labelling page for {os.path.abspath(workdir.value)}: {address} (Ctrl-C stops; "
          "answers are saved as you go)", flush=True)
    try:
      server.serve_forever()
    except KeyboardInterrupt:
      pass
    finally:
      server.server_close()

  app.run(_main, argv)


if __name__ == "__main__":
  main()
