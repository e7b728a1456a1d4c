"""The on-by-default compilation cache: which folder, what it keeps, how it is turned off."""

import json
import textwrap

from conftest import run_python

DRIVER = textwrap.dedent("""
    import json, os, sys
    import jax
    from rlmba_jax import compilation_cache
    base = sys.argv[1]
    out = {}

    def case(name, env, config_dir=None, min_secs=1.0):
      for key in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                  "RLMBA_COMPILATION_CACHE"):
        os.environ.pop(key, None)
      os.environ.update(env)
      os.environ["XDG_CACHE_HOME"] = os.path.join(base, name)
      jax.config.update("jax_compilation_cache_dir", config_dir)
      jax.config.update("jax_persistent_cache_min_compile_time_secs", min_secs)
      path = compilation_cache.enable()
      out[name] = [path, jax.config.jax_compilation_cache_dir,
                   jax.config.jax_persistent_cache_min_compile_time_secs,
                   os.path.isdir(path) if path else None]

    case("default", {})
    case("named_by_env", {"JAX_COMPILATION_CACHE_DIR": os.path.join(base, "mine")},
         config_dir=os.path.join(base, "mine"))
    case("min_time_from_env", {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "2"}, min_secs=2.0)
    case("min_time_set_in_code", {}, min_secs=5.0)
    case("off", {"RLMBA_COMPILATION_CACHE": "0"})
    print("RESULT" + json.dumps(out))
""")


def test_where_the_cache_lives_and_what_it_keeps(tmp_path):
  proc = run_python(f"import sys; sys.argv = ['x', {str(tmp_path)!r}]\n" + DRIVER,
                    env={"JAX_COMPILATION_CACHE_DIR": ""})
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.split("RESULT", 1)[1])
  default = str(tmp_path / "default" / "rlmba_jax" / "xla")
  assert out["default"] == [default, default, 0.0, True]
  # a folder the user names keeps every program too
  mine = str(tmp_path / "mine")
  assert out["named_by_env"] == [mine, mine, 0.0, False]
  # a minimum compile time the user set is kept
  assert out["min_time_from_env"][2] == 2.0 and out["min_time_set_in_code"][2] == 5.0
  assert out["off"] == [None, None, 1.0, None]
