"""The fixed parts of the prediction report page: its CSS, its table-sorting script and the HTML frame."""

_CSS = """
:root { --fg:#1b1f24; --muted:#59636e; --line:#d0d7de; --bg:#ffffff; --panel:#f6f8fa; --flag:#b42318; --ok:#1a7f37; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg);
       background: var(--bg); margin: 0 auto; padding: 16px 24px 48px; max-width: 1280px; }
h1 { font-size: 22px; margin: 4px 0 2px; } h2 { font-size: 17px; margin: 0 0 6px; }
code { font-size: 12px; word-break: break-all; }
.notice { background: #fff4e5; border: 1px solid #f5b66b; padding: 6px 10px; border-radius: 6px; font-weight: 600; }
.model, .vol, .run { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; margin: 14px 0;
       background: var(--bg); }
.model { background: var(--panel); }
.status { font-size: 12px; font-weight: 600; background: #ddf4ff; border: 1px solid #54aeff; border-radius: 10px;
       padding: 1px 8px; vertical-align: middle; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: left; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; background: var(--panel); position: sticky; top: 0; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; font-size: 10px; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; font-size: 10px; }
.tablewrap { max-height: 70vh; overflow: auto; border: 1px solid var(--line); border-radius: 6px; }
td.flagcell { color: var(--flag); font-weight: 600; }
tr.total td { font-weight: 600; }
.meta, .note { color: var(--muted); font-size: 12px; margin: 2px 0 6px; }
.cols { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-size: 12px; color: var(--muted); }
.map img { display: block; image-rendering: pixelated; border: 1px solid var(--line); margin-top: 2px; }
.map .note { max-width: 260px; }
.cbar { height: 10px; margin-top: 6px; border: 1px solid var(--line); background: @CBAR@; }
.cticks { display: flex; justify-content: space-between; font-size: 11px; color: var(--muted); }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 8px; }
.bscan img { display: block; border: 1px solid var(--line); background: #000; }
.swatch { display: inline-block; width: 10px; height: 10px; margin: 0 3px 0 8px; border: 1px solid #555; }
.shift { border-left: 4px solid var(--line); padding: 2px 10px; margin: 6px 0 8px; }
.shift p { margin: 4px 0; }
.shift.flag { border-color: var(--flag); background: #fef3f2; } .shift.flag p { color: var(--flag); font-weight: 600; }
.shift.ok { border-color: var(--ok); }
.gauge { position: relative; height: 8px; width: 240px; background: #eaeef2; border-radius: 4px; margin-top: 6px; }
.gauge .bar { height: 8px; border-radius: 4px; } .gauge .bar.flag { background: var(--flag); }
.gauge .bar.ok { background: var(--ok); }
.gauge .thr { position: absolute; top: -3px; width: 2px; height: 14px; background: var(--fg); }
.back { font-size: 12px; margin: 6px 0 0; }
footer { color: var(--muted); font-size: 12px; margin-top: 24px; }
@media print { .tablewrap { max-height: none; } .vol { break-inside: avoid; } }
"""

_SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("volumes");
  if (!table) { return; }
  var heads = table.tHead.rows[0].cells;
  function key(cell, numeric) {
    var v = cell.getAttribute("data-v");
    if (numeric) { var x = parseFloat(v); return isNaN(x) ? null : x; }
    return (v || "").toLowerCase();
  }
  function sortBy(col) {
    var th = heads[col], numeric = th.getAttribute("data-type") === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
      if (x === y) { return 0; }
      if (x === null || x === "") { return 1; }   /* blanks last, whatever the direction */
      if (y === null || y === "") { return -1; }
      return (x < y ? -1 : 1) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () { sortBy(col); });
    th.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sortBy(col); }
    });
  });
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="segclr {version}">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p class="meta">segclr {version} &middot; written {when} &middot; research use only, not for diagnosis</p>
</header>
<section class="run">
<h2>Run</h2>
<p>{summary}</p>
{postprocess}<ul>{facts}</ul>
</section>
{model}
<section class="run">
<h2>All volumes</h2>
<p class="note">Click a column header to sort (again to reverse). Volume names link to their section below.
B-scans are numbered from 1. Fluid volumes are in nanoliters (nl = 0.001 mm&sup3;).</p>
<div class="tablewrap">{table}</div>
</section>
{sections}
<footer><p>{notice}</p><p>Written by <code>segclr predict --report</code>; self-contained, opens offline.</p></footer>
<script>{script}</script>
</body>
</html>
"""
