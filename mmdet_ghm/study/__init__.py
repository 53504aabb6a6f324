"""The synthetic-set study: named variants x seeds, resumable runs, aggregated records.

* :mod:`.variants` - the named training recipes;
* :mod:`.runner`   - runs a grid of them, several at a time, resumably;
* :mod:`.child`    - trains one run and writes its record;
* :mod:`.records`  - record files and the provenance they carry;
* :mod:`.aggregate` - ``study.json``, Markdown tables, the mAP-over-epochs plot.

The command-line tools are ``tools/study.py`` and ``tools/main_job.py``.
"""
