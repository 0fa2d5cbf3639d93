"""Circuit discovery on the hooked model: the edge graph, one patching engine, EAP / EAP-IG / exact
edge patching / ACDC, circuit selection and faithfulness curves.

    from mechscope.circuits import CircuitSetup, attribute, faithfulness_curve
    setup = CircuitSetup.from_task(model, task, ablation="patching")
    scores = attribute(setup, "eap-ig")          # EdgeScores: m(edge ablated) - m(clean), per edge
    curve = faithfulness_curve(setup, scores)
"""
