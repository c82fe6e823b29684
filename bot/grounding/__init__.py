"""Grounding: what in a text its sources back.

* :mod:`.claims`   - names, numbers, dates and negation a text adds (the invention guard);
* :mod:`.text`     - PTB detokenising, tokens and stems shared by the checks;
* :mod:`.verifier` - per-sentence support, a calibrated score and the reasons a sentence fails.
"""
