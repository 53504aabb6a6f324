"""The loss study: named variants (data set x recipe x loss) x seeds, trained resumably.

Two data sets (the synthetic shapes and the tree-crown aerial images), two
recipes (AdamW and MMDetection's SGD step), the loss families and GHM's
options; one JSON record per finished run, aggregated into ``study.json``,
the generated tables and the low-AP signature.

* :mod:`.variants`  - the named variants: data set, recipe, config, overrides;
* :mod:`.recipes`   - the two training recipes as config overrides;
* :mod:`.data_sets` - where each data set lives and how a record names it;
* :mod:`.runner`    - runs a grid of variants x seeds, several at a time, resumably;
* :mod:`.child`     - trains one run and writes its record;
* :mod:`.records`   - record files, the provenance they carry, their migration;
* :mod:`.aggregate` - ``study.json``, Markdown tables, the mAP-over-epochs plot;
* :mod:`.diagnosis` - the low-AP signature that ``GHMStatsHook`` warns on.

The command-line tools are ``tools/study.py`` and ``tools/main_job.py``.
"""
