"""The HTML report: data gathered from the summary store, charts, sections and the page template."""
