"""A person as the oracle: the queries and answers files and their checks
(``person.files``), the loop's side of a person's rounds (``person.oracle``), and the
labelling page (``person.page``)."""

from rlmba_jax.person.files import SimulatedPerson
