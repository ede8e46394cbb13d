"""duebot benchmarks: `make bench` (``python -m bench``).

Each benchmark is a module listed in ``bench.__main__.BENCHMARKS`` with a function
``run(ctx: Context) -> Section``. A section carries its figures (``Result``: name, value, unit,
goal, met) and a markdown text. One run measures every section again and rewrites
``BENCHMARKS.md`` and ``bench/results.json`` from all of them.

Everything runs against the PostgreSQL at 127.0.0.1 (database ``duebot_bench``, dropped and
recreated; ``BENCH_DATABASE_URL`` overrides it). Scratch files go to ``bench/.work/`` (git-ignored).
A run with scaled-down sizes (for example ``BENCH_INVOICES=5000``) prints its report but leaves
``BENCHMARKS.md`` and ``bench/results.json`` alone unless ``BENCH_WRITE=1`` (``BENCH_WRITE=0``:
never write them).
"""
