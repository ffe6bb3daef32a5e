"""The engine: training, evaluation, inference and occlusion of a run, data-parallel on a mesh.

The public face, by room:

- training core (``engine/``): :class:`engine.config.TrainConfig` (every knob, with its help),
  :func:`engine.trainer.train` (= :func:`~engine.trainer.build_run` then
  :func:`~engine.trainer.run_steps`), :func:`engine.mesh.make_mesh`, the jitted steps
  (``engine.steps``), checkpoints that survive preemption (``engine.checkpoints``), the linear
  probe (``engine.linear_probe``, ``engine.probe_fit``) and the dense ISL task
  (``engine.dense_task``);
- inference: :func:`engine.inference.load_run` (a workdir's typed
  :class:`~engine.run_record.RunRecord` and its model, built abstractly and filled from the
  checkpoint) and :class:`engine.predictor.Predictor`, the one sharded forward that validation,
  evaluation, prediction, feature caching and occlusion run;
- ``engine.evaluation``: :func:`engine.evaluation.evaluate.evaluate_run` (the paper's metrics
  with patient-level CIs, ``engine.evaluation.metrics``), validation during training, pixel
  metrics, probe studies;
- ``engine.occlusion``: the batched sweep (``sweep``), exact incremental inference
  (``incremental``, ``incremental_maps``), and :func:`engine.occlusion.study.run_study`;
- ``engine.reports`` (host only, never jitted): ``report.json``/``predictions.csv``/
  ``report.html`` from jinja2 templates with matplotlib charts, heatmap overlays and galleries;
- :mod:`engine.anchors`: the paper's published numbers that reports and tests compare with.

``launch/`` parses flags and calls these; it holds no engine logic.
"""
