"""The report's page template, style and chart loader (no external resources: it must open offline)."""

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2733;background:#f6f7f9}
header{background:#1d3557;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;opacity:.85;font-size:13px}
nav{position:sticky;top:0;background:#fff;border-bottom:1px solid #dde2e8;padding:8px 28px;z-index:10}
nav a{margin-right:16px;color:#1d3557;text-decoration:none;font-size:14px}
nav a.s-missing,nav a.s-error{color:#8a94a0;text-decoration:line-through}
main{padding:8px 28px 40px;max-width:1300px}
section{background:#fff;border:1px solid #dde2e8;border-radius:6px;padding:14px 20px;margin:18px 0}
h2{margin:4px 0 10px;font-size:19px}h3{font-size:15px;margin:18px 0 6px}
.chart{min-height:420px;margin:8px 0}
.table{overflow-x:auto;max-height:520px;overflow-y:auto}
table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #e7ebef;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f6;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums}
.missing{color:#7a4b00;background:#fff6e0;border-left:3px solid #e0a100;padding:6px 10px}
.note{color:#5b6672;font-size:13px}code{background:#eef1f4;padding:0 3px;border-radius:3px}
.chart-error{color:#a00}
"""

# Draws every embedded figure; marks each chart and the page so a browser check can tell they drew.
LOADER = """
(function () {
  var blocks = document.querySelectorAll('script[type="application/json"][data-figure]');
  var pending = [];
  blocks.forEach(function (block) {
    var div = document.getElementById(block.getAttribute('data-figure'));
    try {
      var fig = JSON.parse(block.textContent);
      pending.push(Plotly.newPlot(div, fig.data, fig.layout || {},
        {responsive: true, displaylogo: false}).then(function () { div.setAttribute('data-rendered', 'yes'); }));
    } catch (err) {
      div.textContent = 'This chart could not be drawn: ' + err;
      div.className += ' chart-error';
      console.error(err);
    }
  });
  Promise.all(pending).then(function () {
    document.body.setAttribute('data-charts-rendered', String(pending.length));
  }, function (err) { console.error(err); });
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:">
<title>edumine report {run}</title>
<style>{style}</style>
<script>{plotly}</script>
</head><body>
<header><h1>edumine report</h1><p>run {run} · config {config_hash} · lake {lake} · generated {generated}</p></header>
<nav>{nav}</nav>
<main>{body}</main>
<script>{loader}</script>
</body></html>
"""
