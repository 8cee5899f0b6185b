"""The topic-word vocabulary: a CountVectorizer over one document per topic (BERTopic joins each topic's docs).

``min_df`` and ``max_df`` therefore count topics. With very few topics (HDBSCAN on a small corpus) the two
contradict each other: ``max_df=0.5`` of three topics allows a term in at most one, ``min_df=2`` asks for
two, and scikit-learn refuses to fit. There the vocabulary keeps ``max_df`` and drops ``min_df`` to 1 (a
term may then be one topic's own), or with a single topic document keeps every term. The params it applied
are its params afterwards, so the saved model says what was used. With enough topics nothing changes.
"""

from __future__ import annotations

import logging
from typing import Any

from sklearn.feature_extraction.text import CountVectorizer

from edumine.progress import phase

log = logging.getLogger(__name__)


class TopicVocabulary(CountVectorizer):
    def fit_transform(self, raw_documents: Any, y: Any = None) -> Any:
        n_topics = len(raw_documents)
        if isinstance(self.min_df, int) and isinstance(self.max_df, float) and self.max_df * n_topics < self.min_df:
            relaxed = {"min_df": 1} if self.max_df * n_topics >= 1 else {"min_df": 1, "max_df": 1.0}
            log.warning("topics: only %d topic documents, too few for min_df=%d and max_df=%s; using %s",
                        n_topics, self.min_df, self.max_df, relaxed)
            self.set_params(**relaxed)
        with phase("topics: vocabulary (one document per topic)", n_topics, unit="topics", logger=log):
            return super().fit_transform(raw_documents, y)
