"""The catalogue of assumptions: every definition this suite had to fix because the paper (known only
through its summary; docs/methods.md) or the protocol leaves it open, and every choice the code
makes that a reader of a result should know. Each run records the ids in force
(`assumptions_in_force`), and every report lists them with their texts. Which ids an inner loop, an
outer loop or a method brings is stated by its class or registry row (benchmarks/learner/registry.py);
the texts are here.
"""

from __future__ import annotations

from typing import Any

from benchmarks.data.datasets import REGRESSION, dataset_info
from benchmarks.learner.registry import (
    build_inner,
    build_outer,
    build_regularizer,
    loop_facts,
    method_spec,
    rules_in_force,
)
from benchmarks.runs.config import BEFORE_SETTING

ASSUMPTIONS: dict[str, str] = {
    # the paper
    "paper-via-summary": (
        "The paper (arXiv 2411.00404) is known only through a summary; where it is silent or contradicts "
        "itself, docs/methods.md fixes the definition."
    ),
    # protocol and training
    "protocol-finn-hyperparameters": (
        "Every method uses the MAML hyper-parameters of Finn et al. 2017, Appendix A.1 for its dataset "
        "(meta-batch, inner steps and step size where it has inner steps, iterations)."
    ),
    "protocol-meta-optimizer": (
        "Meta-optimiser Adam with learning rate 1e-3 (Finn et al.'s code default) for every method."
    ),
    "protocol-image-datasets-mini-hparams": (
        "CUB and FC100 use the mini-ImageNet hyper-parameters of Finn et al. 2017 (no published MAML "
        "protocol for them)."
    ),
    "protocol-model-selection": (
        "The checkpoint with the best validation metric is the one evaluated on the test episodes."
    ),
    "init-seeded-generators": (
        "Backbone weights are Xavier-uniform from a generator seeded by the run seed (BN scale 1, shift 0); heads "
        "and kernel parameters come from a separate generator (seed + 1), so every method shares the backbone init."
    ),
    # backbones
    "backbone-conv-no-bias": "Conv-4 convolutions have no bias: the batch-norm shift that follows makes it redundant.",
    "backbone-strided-spatial-mean": (
        "Strided Conv-4 (Omniglot) averages the last feature map over space, as Finn et al.'s code does."
    ),
    "backbone-maxpool-flatten": "Max-pool Conv-4 (mini-ImageNet, CUB, FC100) flattens the last feature map.",
    "bn-transductive": (
        "Batch norm is transductive: statistics of the current support or query batch, no running statistics "
        "(what Finn et al. and most re-implementations do)."
    ),
    "bn-inductive-support-stats": (
        "Inductive batch norm uses the support set's statistics for support and query (MetaBN, Bronskill et al. "
        "2020), not running statistics, so a query prediction does not depend on the other queries."
    ),
    # MAML
    "maml-adapt-all-parameters": (
        "The MAML inner loop adapts every parameter: convolutions, batch-norm scales and shifts, and the linear "
        "head. Finn et al.'s code (cbfinn/maml, maml.py, MAML.construct_model) adapts only its `weights` dict: "
        "convolutions, their biases and the head; its batch-norm shifts are meta-learned but not adapted, and it "
        "has no batch-norm scale."
    ),
    "head-init-reference-omniglot": (
        "head.init = reference under Finn et al.'s Omniglot protocol: the gradient inner loop's head weight is "
        "drawn from N(0, 1), bias zero, as Finn et al.'s code draws it (cbfinn/maml, maml.py, "
        "MAML.construct_conv_weights: w5 = tf.random_normal, b5 = tf.zeros)."
    ),
    "head-init-reference-mini-imagenet": (
        "head.init = reference under Finn et al.'s mini-ImageNet protocol (mini-ImageNet, CUB, FC100): the "
        "gradient inner loop's head weight is Xavier-uniform, U(-b, b) with b = sqrt(6 / (fan_in + fan_out)), bias "
        "zero, as Finn et al.'s code draws it (cbfinn/maml, maml.py, MAML.construct_conv_weights: w5 with "
        "tf.contrib.layers.xavier_initializer, uniform by default; b5 = tf.zeros)."
    ),
    "head-init-reference-sinusoid": (
        "head.init = reference under Finn et al.'s sinusoid protocol: the gradient inner loop's output layer "
        "weight is drawn from N(0, 0.01^2), redrawn beyond two standard deviations, bias zero, as Finn et al.'s "
        "code draws it (cbfinn/maml, maml.py, MAML.construct_fc_weights: tf.truncated_normal(stddev=0.01), "
        "tf.zeros). The hidden layers are the shared backbone's (Xavier-uniform), not Finn et al.'s."
    ),
    "head-init-xavier": (
        "head.init = xavier: the gradient inner loop's head weight is Xavier-uniform, bias zero, on every dataset "
        "(the suite's only initialisation before head.init existed). Finn et al.'s code draws its head so on "
        "mini-ImageNet only; on Omniglot from N(0, 1), on the sinusoid from a truncated normal with std 0.01 "
        "(cbfinn/maml, maml.py, MAML.construct_conv_weights, MAML.construct_fc_weights)."
    ),
    "head-init-zero": (
        "head.init = zero: the gradient inner loop's head weight and bias start at zero (not Finn et al.'s "
        "initialisation on any dataset)."
    ),
    "maml-first-order-detach": (
        "First-order gradient inner loop: the inner gradients are treated as constants (detached)."
    ),
    # I-AMFS
    "kernel-ridge-one-hot": (
        "I-AMFS solves alpha = (K + lambda I)^-1 Y_S with one-hot support labels Y_S; query logits are "
        "s * k(F_Q, F_S) alpha and the meta-loss is cross-entropy."
    ),
    "kernel-regression-targets": (
        "I-AMFS for regression: Y_S are the support targets themselves and outputs are not scaled."
    ),
    "kernel-one-solve": (
        '"One optimisation step per task" means exactly one closed-form solve, no inner gradient steps.'
    ),
    "kernel-learned-log-parameters": (
        "sigma, lambda and the logit scale s are meta-learned as log-parameters by the outer loop."
    ),
    "kernel-sigma-median": (
        "sigma is initialised to the median pairwise feature distance of the first training meta-batch "
        "(support and query)."
    ),
    "kernel-sigma-sqrt-d": "sigma is initialised to sqrt(d), d the feature dimension.",
    "kernel-init-values": (
        "lambda is initialised to kernel.lambda_init (default 1.0) and s to kernel.scale_init (default 10.0); "
        "the summary gives neither."
    ),
    "kernel-cholesky-jitter": (
        "The solve is a Cholesky factorisation; when K + lambda I is not numerically positive definite, jitter "
        "(1e-6 x mean diagonal, growing tenfold) is added and the retries are counted."
    ),
    "kernel-first-order-detached-support": (
        "First-order I-AMFS: alpha is computed from detached support features, so the meta-gradient reaches "
        "the backbone only through k(F_Q, F_S)."
    ),
    # linear ridge head (control)
    "ridge-one-hot": (
        "The ridge control solves alpha = (F_S F_S^T + lambda I)^-1 Y_S with one-hot Y_S (the linear kernel "
        "a . b in I-AMFS's closed form); query logits are s * F_Q F_S^T alpha and the meta-loss is cross-entropy."
    ),
    "ridge-regression-targets": "The ridge control for regression: Y_S are the support targets, outputs unscaled.",
    "ridge-init-values": (
        "The ridge control meta-learns log lambda and log s, initialised from I-AMFS's settings kernel.lambda_init "
        "(default 1.0) and kernel.scale_init (default 10.0), so that it starts where I-AMFS does."
    ),
    "ridge-cholesky-jitter": (
        "The ridge control's solve is a Cholesky factorisation with I-AMFS's jitter retries (1e-6 x mean "
        "diagonal, growing tenfold, at most kernel.max_jitter_retries), counted."
    ),
    "ridge-first-order-detached-support": (
        "First-order ridge control: alpha is computed from detached support features, as first-order I-AMFS."
    ),
    # prototypes (control)
    "prototypes-squared-euclidean": (
        "The ProtoNet control's logits are minus the squared Euclidean distances from each query feature to "
        "each class's mean support feature, with no scale or temperature and no parameters besides the backbone."
    ),
    "prototypes-first-order-detached-support": (
        "First-order ProtoNet control: the prototypes are computed from detached support features."
    ),
    # O-AMFS
    "cosine-m-is-t-minus-1": (
        "O-AMFS weight c_i = 1 + (1/m) sum_{j != i} cos(g_i, g_j) with m = T - 1 (the summary leaves m undefined)."
    ),
    "cosine-weights-constant": (
        "O-AMFS weights are computed from detached task gradients (no gradient flows through them) and "
        "G = (1/T) sum_i c_i g_i goes to the same optimiser as the mean; a zero gradient has cosine 0."
    ),
    # regularizer
    "regularizer-signs": (
        "Composite regularizer R = L_Q + mu ||grad_f L_Q||^2 + gamma I(f; D_Q), both terms added (the summary "
        "prints a minus on the gradient-norm term but says the term penalises large gradients)."
    ),
    "regularizer-printed-minus-sign": "The gradient-norm term has the summary's printed minus sign (mu_sign = -1).",
    "regularizer-information-minus-sign": "The information term is subtracted (gamma_sign = -1).",
    "regularizer-amfs-strengths": "AMFS's regularizer strengths mu = 0.1, gamma = 0.01 (the summary gives none).",
    "regularizer-gradient-norm-definition": (
        "The gradient-norm term is the squared norm of the query loss's gradient with respect to the "
        "predictions (logits), averaged over query points."
    ),
    "regularizer-information-definition": (
        "The information term is H(mean_x p(y|x)) - mean_x H(p(y|x)) from the softmax of the query logits "
        "(mutual information between query inputs and predicted labels)."
    ),
    "regularizer-information-zero-regression": "For regression the information term is zero.",
    # datasets
    "omniglot-split": (
        "Omniglot: 1100 / 100 / 423 characters for train / validation / test, taken in background-then-"
        "evaluation order; rotations by 90, 180 and 270 degrees are new classes in every split."
    ),
    "cub-split": (
        "CUB: the Closer Look split (sorted class i: base if i % 2 == 0, validation if i % 4 == 1, novel if "
        "i % 4 == 3)."
    ),
    "fc100-split": "FC100: CIFAR-100 split by superclass, 12 / 4 / 4 superclasses (60 / 20 / 20 classes).",
    "sinusoid-protocol": (
        "Sinusoid regression as Finn et al. 2017, section 5.1: amplitude, phase and input ranges as there, "
        "10 support and 10 query points, MLP 1-40-40 (ReLU) plus the method's output layer, 1 inner step of "
        "0.01 in training (10 at test), by default 25 tasks per meta-batch and 70,000 iterations; metric MSE (lower "
        "is better)."
    ),
}


# recorded by every run whose inner loop is the gradient one, with one head-init id
GRADIENT_INNER = "maml-adapt-all-parameters"
HEAD_INIT_PREFIX = "head-init-"


def head_init_assumption(config: dict[str, Any]) -> str:
    """The head-init id of a gradient-inner-loop run's config (a stored one too: a config without head.init
    was made before the setting existed, with BEFORE_SETTING's value)."""
    choice = config.get("head.init", BEFORE_SETTING["head.init"])
    if choice == "reference":
        return f"{HEAD_INIT_PREFIX}reference-{dataset_info(config['dataset']).protocol}"
    return f"{HEAD_INIT_PREFIX}{choice}"


def recorded_assumptions(ids: list[str], config: dict[str, Any]) -> tuple[list[str], bool]:
    """The ids a stored record stands for, and whether any was read from its config rather than its list:
    a gradient-inner-loop record made before head.init existed lists no head-init id; its config says
    which initialisation it used."""
    if GRADIENT_INNER in ids and not any(i.startswith(HEAD_INIT_PREFIX) for i in ids):
        return [*ids, head_init_assumption(config)], True
    return list(ids), False


def assumptions_in_force(config: dict[str, Any]) -> list[str]:
    """The ids of ASSUMPTIONS that apply to a resolved run config, in catalogue order: those of every
    run, the dataset's, the backbone's, and the rules of its inner loop, outer loop and method."""
    dataset = dataset_info(config["dataset"])
    regression = dataset.task == REGRESSION
    mu, gamma = float(config.get("regularizer.mu", 0.0)), float(config.get("regularizer.gamma", 0.0))
    ids = {
        "paper-via-summary",
        "protocol-finn-hyperparameters",
        "protocol-meta-optimizer",
        "protocol-model-selection",
        "init-seeded-generators",
    }
    if dataset.backbone == "conv4":
        ids.add("backbone-conv-no-bias")
        ids.add(
            "backbone-strided-spatial-mean"
            if config.get("backbone.pooling") == "strided"
            else "backbone-maxpool-flatten"
        )
        ids.add("bn-inductive-support-stats" if config.get("bn_mode") == "inductive" else "bn-transductive")
    ids.update(dataset.assumptions)
    inner, outer = build_inner(config), build_outer(config)
    ids.update(rules_in_force(inner.assumptions, loop_facts(inner)))
    ids.update(rules_in_force(outer.assumptions, loop_facts(outer)))
    regularized = build_regularizer(config) is not None
    facts = {"task": dataset.task, "first_order": inner.first_order, "regularized": regularized}
    ids.update(rules_in_force(method_spec(config["method"]).assumptions, facts))
    if GRADIENT_INNER in ids:
        ids.add(head_init_assumption(config))
    if mu > 0 or gamma > 0:
        mu_minus = mu > 0 and float(config.get("regularizer.mu_sign", 1.0)) < 0
        gamma_minus = gamma > 0 and not regression and float(config.get("regularizer.gamma_sign", 1.0)) < 0
        if not (mu_minus or gamma_minus):
            ids.add("regularizer-signs")
        if mu_minus:
            ids.add("regularizer-printed-minus-sign")
        if gamma_minus:
            ids.add("regularizer-information-minus-sign")
        if mu > 0:
            ids.add("regularizer-gradient-norm-definition")
        if gamma > 0:
            ids.add("regularizer-information-zero-regression" if regression else "regularizer-information-definition")
    unknown = ids - set(ASSUMPTIONS)
    if unknown:
        raise KeyError(f"assumption ids {sorted(unknown)} are not in benchmarks/runs/assumptions.py ASSUMPTIONS")
    return [key for key in ASSUMPTIONS if key in ids]
