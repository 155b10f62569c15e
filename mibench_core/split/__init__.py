"""Split (collaborative) inference: reconstructing a model's input from intermediate features.

He, Zhang, Lee, "Model Inversion Attacks Against Collaborative Inference",
ACSAC 2019. A model is split after a named layer: the trusted edge computes
``f1`` (the layers up to the split point), the untrusted cloud computes
``f2`` and sees ``f1(x)``. The cloud reconstructs ``x`` itself: per-sample
reconstruction, scored with PSNR and SSIM against the input that produced
the features.

* :mod:`~mibench_core.split.nets`: the split models (LeNet, CIFAR-10 CNN)
  with named layers, ``split(point) -> (f1, f2)`` and the shadow models'
  alternative structures;
* :mod:`~mibench_core.split.common`: the split stage (what each threat model
  sees, the victims, the artifact);
* techniques, one module each: :mod:`~mibench_core.split.rmle` (white-box),
  :mod:`~mibench_core.split.inverse_net` (black-box, queries of ``f1``),
  :mod:`~mibench_core.split.query_free` (shadow model, no queries);
* :mod:`~mibench_core.split.metrics` (PSNR, SSIM, evaluation-model Acc@1),
  :mod:`~mibench_core.split.report` (table, figures);
* :mod:`~mibench_core.split.config` and :mod:`~mibench_core.split.plan`
  (stdlib only): the ``split_inference`` config section and its DAG nodes.
"""
