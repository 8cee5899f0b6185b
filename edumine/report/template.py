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
.run-status b,header b.status{font-weight:600}
.lineage-view .switch{margin:4px 0 8px}.lineage-view select{font:inherit;padding:2px 4px}
.legend{font-size:12px;color:#3b4652;display:flex;flex-wrap:wrap;gap:4px 14px;margin:6px 0}
.legend .item{display:inline-flex;align-items:center;gap:4px}
.swatch{display:inline-block;width:14px;height:12px;background:rgba(29,53,87,.55)}
.swatch.gap,td.gap{background:repeating-linear-gradient(45deg,#eef0f3 0 3px,#fff 3px 6px)}
.ev{display:inline-block;width:14px;height:14px;line-height:14px;border-radius:3px;color:#fff;font-size:10px;
 font-weight:700;text-align:center}
.timeline-wrap{overflow-x:auto;max-width:100%}
table.timeline{border-collapse:separate;border-spacing:1px;font-size:12px;table-layout:fixed}
table.timeline th.topic{width:300px;min-width:300px;max-width:300px;text-align:left;font-weight:normal;
 background:#fff;position:sticky;left:0;z-index:1;padding:2px 6px 2px 0}
table.timeline th.topic a.name,table.timeline th.topic summary.name,table.timeline th.topic span.title{display:block;
 white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:300px}
table.timeline th.topic a.name{font-weight:600;color:#1d3557;text-decoration:none}
table.timeline th.topic span.title{color:#5b6672;font-style:italic;font-size:11px}
table.timeline th.topic .list{display:block;white-space:normal;font-size:11px}
table.timeline th.w{width:22px;min-width:22px;height:54px;padding:0;vertical-align:bottom;background:#fff;
 font-weight:normal;font-size:10px;color:#3b4652}
table.timeline th.w span{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;display:inline-block}
table.timeline td{width:22px;height:28px;padding:0;text-align:center;border:none}
.topic-detail p.events{font-size:13px;margin:2px 0}
table.timeline td.peak,table.timeline th.peak{width:52px;font-size:11px;color:#3b4652;text-align:right;
 background:#fff;padding-left:4px}
table.timeline tr.unclear th{color:#7a4b00}
figure.family{margin:8px 0 12px}figure.family figcaption{font-size:13px;color:#3b4652;margin-bottom:2px}
figure.family svg text{font-size:12px;fill:#1d2733}figure.family svg text.wl{font-weight:600;fill:#3b4652}
figure.family .link{fill:none;stroke:#e07000;stroke-opacity:.45}figure.family .node{fill:#1d3557}
.topic-detail{border-top:1px solid #e7ebef;padding:6px 0 10px}.topic-detail h3{margin:8px 0 2px}
.topic-detail h4{font-size:13px;margin:8px 0 4px;color:#3b4652}
.topic-detail ol.posts{margin:0;padding-left:22px;font-size:13px;color:#2c3844}
.flag{font-size:12px;font-weight:normal;color:#7a4b00;background:#fff6e0;padding:1px 6px;border-radius:3px}
svg.spark text{font-size:10px;fill:#5b6672}svg.spark .axis{stroke:#c5ccd3}svg.spark .band{fill:rgba(31,119,180,.18)}
svg.spark .line{fill:none;stroke:#1f77b4;stroke-width:1.5}svg.spark .pt{fill:#1f77b4}
svg.spark .gap{fill:#eef0f3}
details.tables{margin-top:12px}details.tables summary{cursor:pointer;color:#1d3557}
table.trust td:last-child{max-width:640px}
table.threads td:nth-child(2){white-space:nowrap}table.threads a{color:#1d3557}
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
  document.querySelectorAll('select[data-switch]').forEach(function (select) {
    var view = select.closest('.lineage-view');
    select.addEventListener('change', function () {
      view.querySelectorAll('.scope').forEach(function (block) {
        block.hidden = block.getAttribute('data-scope') !== select.value;
      });
    });
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
<header><h1>edumine report</h1><p>run {run} · {status} · config {config_hash} · lake {lake} · generated {generated}</p></header>
<nav>{nav}</nav>
<main>{body}</main>
<script>{loader}</script>
</body></html>
"""
