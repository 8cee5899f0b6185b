"""edumine.estimator.Estimator: scikit-learn's parameter protocol for the theme estimators, which scikit-learn's
own clone accepts."""

from __future__ import annotations

import pytest
from sklearn.base import clone

from edumine.models.themes.estimators import Ensemble, TfidfLogReg


def test_params_are_the_init_keywords_and_clone_keeps_them() -> None:
    model = TfidfLogReg(C=3.0, min_df=1)
    assert model.get_params(deep=False) == {"C": 3.0, "codebook": None, "codebook_weight": 1.0, "min_df": 1,
                                            "ngram_max": 2, "seed": 0}
    copy = clone(model)
    assert copy is not model and copy.get_params() == model.get_params()
    assert model.set_params(C=0.5).C == 0.5 and repr(model).startswith("TfidfLogReg(C=0.5, ")


def test_an_unknown_parameter_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid parameter 'tfidf_c'"):
        Ensemble().set_params(tfidf_c=1.0)
