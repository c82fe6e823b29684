"""Grounding: what in a text its sources back.

* :mod:`.claims`   - names, numbers, dates and negation a text adds (the invention guard);
* :mod:`.text`     - PTB detokenising, tokens and stems shared by the checks;
* :mod:`.relations` - does ONE sentence say a short claim with the same bindings (number -> noun,
                     who did what, negation)? The /ask answers' check;
* :mod:`.verifier` - per-sentence support, a calibrated score and the reasons a sentence fails;
                     also :func:`.verifier.backing_sentence`, the one check a written /ask answer passes.
"""
