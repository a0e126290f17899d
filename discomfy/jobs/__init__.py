"""Jobs: the job row and its state table (``state``), the SQLite store (``store``, with ``schema`` and
``records``) and our own fair queue between users (``fairqueue``). Only ``store`` does I/O."""
