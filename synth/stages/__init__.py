"""The stages of a job, a module each, each reading only the previous stage's files.

``train.run_train``, ``generate.run_generate``, ``evaluate.run_evaluate`` (and ``interpolate``,
``submit``) are what the CLI calls; they check inputs before writing anything (``outdir``: who owns
--out), then hand the heavy work to ``engine`` (Ray) and the plain modules below it. Paths come
from ``synth.layout``.
"""
