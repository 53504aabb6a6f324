"""Compare losses on any detector config: ``tools/compare_losses.py``.

* :mod:`.loss_settings` - the settings (CE, FL, GHM, GHM + cap, the config's
  own) and how each is swapped into a config;
* :mod:`.work_dir`      - what a comparison's work dir holds, and the check
  that it never mixes runs of two configs;
* :mod:`.verdict`       - the rule that turns mean ± std over seeds into
  "ahead", "level", "behind" or "not enough seeds to say";
* :mod:`.report`        - ``report.md`` and ``curves.png``;
* :mod:`.engine`        - plans the runs and trains them with the study runner
  (:mod:`mmdet_ghm.study.runner`: resumable, locked, one record per run).
"""
