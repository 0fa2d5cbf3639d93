"""Phase diagram: the classifier on hand-set weights, and the corners of a small trained grid."""

import torch

from mechscope.toy import PhaseConfig, phase_diagram
from mechscope.toy.phase import classify_phase


def test_classify_phase_by_hand():
    main = torch.tensor([1.0, 0.0, 1.0, 1.0])
    extra = torch.tensor([0.0, 1.0, -1.0, 1.0])
    # ignored, dedicated, antipodal superposition, same-sign (not a valid superposition)
    assert classify_phase(main, extra).tolist() == [0, 1, 2, 0]


def test_small_grid_corners():
    cfg = PhaseConfig(feature_density=(1.0, 0.03), relative_importance=(0.2, 5.0), replicas=2,
                      steps=1500, batch_size=512, lr=1e-2)
    d = phase_diagram(cfg)
    names = d.PHASES
    # dense: the more important feature takes the single dimension
    assert names[d.phase[0, 0]] == "not represented"
    assert names[d.phase[0, 1]] == "dedicated dimension"
    # very sparse, extra feature nearly as important: both stored, antipodally
    assert names[d.phase[1, 1]] in ("superposition", "dedicated dimension")
    assert d.count("superposition") >= 1
    assert d.to_dict()["phase"] == d.phase.tolist()
    assert d.figure().data


def test_linear_model_never_superposes():
    cfg = PhaseConfig(feature_density=(1.0, 0.03), relative_importance=(0.5, 2.0), replicas=1,
                      steps=800, batch_size=256, lr=1e-2, activation="linear")
    assert phase_diagram(cfg).count("superposition") == 0
