"""Quality on the page: "how much to trust this" (model scores with one sentence each on what they mean)
and the marks other sections use (catch-all topics, themes below the reliability floor)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from edumine.report.html import esc, html_table, percent

MEANINGS = {
    "npmi": "How often a topic's top words appear together in the same posts, beyond chance (−1 to 1): around "
            "0.05 and above the words belong together; near 0 they meet by chance.",
    "diversity": "Share of distinct words among all topics' top 25 words: 1 means no two topics share words, "
                 "a low value means topics repeat each other.",
    "outliers": "Share of posts the topic model placed in no topic; they count in no topic's prevalence.",
    "catch_all": "Topics whose label words few of their own posts use (label coverage under {floor}): clusters "
                 "of short, off-topic or spam posts. The report folds them into one \"unclear / spam\" row.",
    "theme_f1": "Cross-validated F1 of each theme's classifier against the hand labels (1 is perfect). A theme "
                "under the reliability floor ({floor}) is marked unreliable wherever it is drawn.",
    "calibration": "How far the classifier's probabilities are from the observed frequencies (expected "
                   "calibration error, 0 is perfect): a large value means the scores cannot be read as chances.",
}


def _find(scores: Any, *keys: str) -> Any:
    """The first value under any of ``keys`` anywhere in the nested scores (None when absent)."""
    if isinstance(scores, dict):
        for key in keys:
            if key in scores and not isinstance(scores[key], dict):
                return scores[key]
        for value in scores.values():
            found = _find(value, *keys)
            if found is not None:
                return found
    return None


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "not measured in this run"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


def trust_section_body(scores: dict[str, Any], topics: pd.DataFrame, themes: pd.DataFrame,
                       catch_all_floor: float) -> str:
    topic_scores = scores.get("topics") or {}
    theme_scores = scores.get("themes") or {}
    rows = [("Topic coherence (NPMI)", _number(topic_scores.get("npmi")), MEANINGS["npmi"]),
            ("Topic diversity", _number(topic_scores.get("diversity")), MEANINGS["diversity"]),
            ("Outliers", percent(topic_scores.get("outlier_share")) if topic_scores.get("outlier_share") is not None
             else "not measured in this run", MEANINGS["outliers"])]
    if not topics.empty:
        flagged = topics[topics["catch_all"].astype(bool)]
        sizes = pd.to_numeric(topics["size"], errors="coerce")
        docs = sizes[topics["catch_all"].astype(bool)].sum() / sizes.sum() if sizes.sum() else None
        rows.append(("Catch-all topics", f"{len(flagged):,} of {len(topics):,} topics"
                     + (f" ({percent(docs)} of topic docs)" if docs is not None else ""),
                     MEANINGS["catch_all"].format(floor=catch_all_floor)))
    floor = themes.attrs.get("floor", 0.5) if not themes.empty else 0.5
    macro = theme_scores.get("cv_macro_f1")
    if macro is None and not themes.empty and themes["f1"].notna().any():
        macro = float(pd.to_numeric(themes["f1"], errors="coerce").mean())
    unreliable = themes[themes["reliable"].eq(False)] if not themes.empty else themes
    theme_value = _number(macro, 2) if macro is None else f"macro {macro:.2f}; {len(unreliable)} of {len(themes)} " \
                                                         "themes under the floor"
    rows.append(("Theme F1", theme_value, MEANINGS["theme_f1"].format(floor=floor)))
    rows.append(("Calibration", _number(_find(theme_scores, "ece", "calibration_error", "expected_calibration_error",
                                             "calibration"), 3), MEANINGS["calibration"]))
    table = "".join(f"<tr><th>{esc(name)}</th><td class=\"num\">{esc(value)}</td><td>{esc(meaning)}</td></tr>"
                    for name, value, meaning in rows)
    body = (f'<div class="table"><table class="trust"><thead><tr><th>measure</th><th>value</th><th>what it means'
            f"</th></tr></thead><tbody>{table}</tbody></table></div>")
    if not themes.empty:
        shown = themes.assign(f1=pd.to_numeric(themes["f1"], errors="coerce"),
                              reliable=[{True: "yes", False: "no: marked unreliable"}.get(r, "unknown")
                                        for r in themes["reliable"]])
        body += "<h3>Themes</h3>" + html_table(shown[["theme", "label", "method", "f1", "reliable"]], floats="{:.2f}")
    return body
