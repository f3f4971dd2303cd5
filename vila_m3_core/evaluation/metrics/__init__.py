"""Pure metric functions of the benchmarks (no model needed except the GREEN judge class).

- :mod:`.vqa`: VQA-RAD / SLAKE exact match, closed accuracy, open recall.
- :mod:`.pathvqa`: PathVQA yes/no exact match joined on ``question_id``.
- :mod:`.mimicvqa`: MIMIC-VQA normalisation, closed accuracy, open recall/F1 per question type.
- :mod:`.report`: BLEU-1..4, ROUGE-L, METEOR, CIDEr (pycocoevalcap, PTB tokenisation); :mod:`.cleaning`.
- :mod:`.green`: the GREEN judge protocol.
- :mod:`.classification`: yes/no parsing, per-class F1, macro mean, AUC.
"""
