"""Model-free scoring for benchmark evaluation, following MedEvalKit's rules.

Prompts (:mod:`.prompts`), answer extraction (:mod:`.extraction`), judging
(:mod:`.judging`), open-ended text metrics (:mod:`.text_metrics`), MMMU's open
questions (:mod:`.mmmu`), per-benchmark aggregation (:mod:`.aggregate`), grounding
(:mod:`.grounding`) and paired mode comparison (:mod:`.paired`). Where MedEvalKit
has bugs, the default is correct and ``compat="medevalkit"`` reproduces them
(:mod:`.compat` names each one).
"""
