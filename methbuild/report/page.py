"""The report page: one template (``string.Template``) filled from the dict of :mod:`.data`.

Every value is escaped with :func:`html.escape`; the page has no script and no remote resource,
tables are HTML tables and every image has ``alt`` text, so it reads the same from ``file://``
with scripts off.
"""

from __future__ import annotations

import math
from html import escape
from string import Template

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="methbuild $version">
<title>$title — methbuild report</title>
<style>
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #fafafa; }
header.top { background: #1f3a5f; color: #fff; padding: 18px 28px; }
header.top h1 { margin: 0 0 4px; font-size: 26px; }
header.top p { margin: 0; opacity: .85; }
nav.toc { padding: 10px 28px; background: #e8eef6; border-bottom: 1px solid #cfd9e6; position: sticky; top: 0;
          z-index: 2; }
nav.toc a { margin-right: 18px; color: #1f3a5f; text-decoration: none; font-weight: 600; }
main { padding: 8px 28px 40px; max-width: 1280px; }
section { background: #fff; border: 1px solid #e2e2e2; border-radius: 6px; padding: 6px 20px 18px; margin: 18px 0; }
h2 { border-bottom: 2px solid #1f3a5f; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13.5px; }
th, td { border: 1px solid #d8d8d8; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f0f3f7; }
td.l, th.l { text-align: left; }
table.kv td:first-child { font-weight: 600; text-align: left; background: #f7f9fb; }
table.kv td { text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 8px; margin: 4px 0 12px; }
figure { margin: 0; text-align: center; font-size: 12px; color: #555; }
figure img { display: block; margin: 0 auto 2px; border: 1px solid #ddd; background: #eee; }
.cls { font-weight: 600; margin: 10px 0 2px; }
.ok { color: #1a7f37; font-weight: 600; } .bad { color: #b3261e; font-weight: 600; }
.note { color: #555; font-style: italic; }
img.plot { max-width: 100%; height: auto; border: 1px solid #eee; }
pre { background: #f4f4f4; padding: 10px; overflow-x: auto; font-size: 13px; }
.sr { display: flex; gap: 10px; flex-wrap: wrap; align-items: flex-start; margin-bottom: 14px; }
.sr img { image-rendering: pixelated; }
.pair { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.pixels img { image-rendering: pixelated; }
</style>
</head>
<body>
<header class="top"><h1>$title</h1><p>$subtitle</p></header>
<nav class="toc" aria-label="Contents">$toc</nav>
<main>
$sections
<p class="note">Made by methbuild $version on $date in $seconds s. A static page: no script, no remote resource.</p>
</main>
</body>
</html>
""")


def e(v) -> str:
    return escape("" if v is None else str(v), quote=True)


def fmt(v, spec: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, str):
        return e(v)
    if isinstance(v, int) and not spec:
        return f"{v:,}"
    return format(v, spec) if spec else e(v)


def pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def table(head: list[str], rows: list[list[str]], *, left: int = 1, cls: str = "", caption: str = "") -> str:
    """An HTML table; cells are already-escaped HTML; the first ``left`` columns align left."""
    th = "".join(f'<th class="l" scope="col">{h}</th>' if i < left else f'<th scope="col">{h}</th>'
                 for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    cap = f"<caption>{caption}</caption>" if caption else ""
    c = f' class="{cls}"' if cls else ""
    return f"<table{c}>{cap}<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def image(src: str, alt: str, w=None, h=None, cls: str = "") -> str:
    size = f' width="{int(w)}" height="{int(h)}"' if w and h else ""
    c = f' class="{cls}"' if cls else ""
    return f'<img src="{e(src)}" alt="{e(alt)}"{size}{c} loading="eager">'


def _thumb(item: dict, caption: str) -> str:
    if item.get("error") or not item.get("thumb"):
        return f'<figure><span class="bad">{e(item.get("id"))}: {e(item.get("error", "no image"))}</span></figure>'
    pic = image(item["thumb"], item.get("alt", ""), item.get("thumb_width"), item.get("thumb_height"))
    href = item.get("href")
    if href:
        pic = f'<a href="{e(href)}">{pic}</a>'
    return f"<figure>{pic}<figcaption>{caption}</figcaption></figure>"


# ------------------------------------------------------------------------------------------------ sections

def _header(d: dict) -> str:
    h = d["header"]
    rows = [[e(f["name"]), e(f["value"])] for f in h["fields"]]
    counts = table(["split", "images"], [[e(c["split"]), fmt(c["images"])] for c in h["counts"]]
                   + [["<b>total</b>", f"<b>{fmt(h['total'])}</b>"]])
    c = h["croissant"]
    if not c.get("present"):
        cro = '<p class="note">No croissant.json in this folder.</p>'
    elif not c.get("available", True):
        cro = f'<p class="note">{e(c.get("error"))}</p>'
    else:
        ok = c.get("valid")
        verdict = ('<span class="ok">validates</span>' if ok else '<span class="bad">does not validate</span>'
                   if ok is False else '<span class="bad">not checked</span>')
        cro = f"<p>{e(c['file'])}: {verdict} with mlcroissant"
        if c.get("load_seconds") is not None:
            cro += f" (loaded in {c['load_seconds']:.2f} s)"
        cro += "</p>"
        if c.get("error"):
            cro += f'<p class="bad">{e(c["error"])}</p>'
        if c.get("record_sets"):
            cro += table(["RecordSet", "time to first record"],
                         [[e(r["name"]), f'{r["first_record_seconds"]:.2f} s' if "first_record_seconds" in r
                           else f'<span class="bad">{e(r.get("error"))}</span>'] for r in c["record_sets"]])
        for w in c.get("warnings") or []:
            cro += f'<p class="note">warning: {e(w)}</p>'
    return (table(["field", "value"], rows, left=2, cls="kv") + "<h3>Counts per split</h3>" + counts
            + "<h3>Croissant</h3>" + cro)


def _labels(d: dict) -> str:
    lab = d["labels"]
    parts = [f"<p>Classes from <b>{e(lab['column'])}</b>: {fmt(lab['classes'])}.</p>"]
    if lab.get("note"):
        parts.append(f'<p class="note">{e(lab["note"])}</p>')
    pair = []
    if lab.get("chart"):
        pair.append(f'<div>{image(lab["chart"], lab.get("chart_alt", "label chart"), cls="plot")}</div>')
    years = []
    y = lab.get("years")
    if y:
        years.append(f"<h3>Creation years ({y['min']}–{y['max']})</h3>")
        years.append(image(y["chart"], y["chart_alt"], cls="plot"))
        bins = [f"{a}–{b}" for a, b in zip(y["edges"], y["edges"][1:])]
        years.append(table(["split"] + bins, [[e(s)] + [fmt(v) for v in vals] for s, vals in y["counts"].items()]))
    head = ["class"] + [e(s) for s in lab["splits"]] + ["total"]
    rows = [[e(r["class"])] + [fmt(v) for v in r["counts"]] + [fmt(r["total"])] for r in lab["rows"]]
    rows.append(["<b>total</b>"] + [f"<b>{fmt(v)}</b>" for v in lab["totals"]] + [f"<b>{fmt(sum(lab['totals']))}</b>"])
    pair.append(f'<div>{table(head, rows, caption="images per class and split")}</div>')
    parts.append(f'<div class="pair">{"".join(pair)}</div>')
    return "".join(parts + years)


def _examples(d: dict) -> str:
    ex = d["examples"]
    parts = []
    if ex.get("note"):
        parts.append(f'<p class="note">{e(ex["note"])}</p>')
    if ex["mode"] == "sr":
        parts.append("<h3>High-resolution crop and its low-resolution copies</h3>"
                     "<p>Each LR crop is nearest-upscaled to the HR crop's size. <i>vs bicubic</i>: PSNR of the "
                     "shipped LR against our own bicubic reduction of the HR (∞ = identical); <i>upscaled</i>: the "
                     "LR upscaled again with bicubic against the HR crop (the bicubic baseline of SR papers).</p>")
        for s in ex.get("sr") or []:
            if s.get("error"):
                parts.append(f'<p class="bad">{e(s["id"])}: {e(s["error"])}</p>')
                continue
            side = s["side"]
            hr_alt = f"HR crop of {s['id']}, {side}×{side} px"
            figs = [f'<figure><a href="{e(s["href"])}">{image(s["hr"], hr_alt, side, side)}'
                    f"</a><figcaption>{e(s['id'])}: HR {side}×{side}</figcaption></figure>"]
            for x in s["scales"]:
                alt = (f"×{x['scale']} LR crop of {s['id']} ({x['lr_side']}×{x['lr_side']} px) nearest-upscaled, "
                       f"PSNR {x['psnr_vs_bicubic']} dB vs bicubic")
                figs.append(f"<figure>{image(x['image'], alt, side, side)}<figcaption>×{x['scale']} "
                            f"({x['lr_side']} px): vs bicubic {fmt(x['psnr_vs_bicubic'])} dB, upscaled "
                            f"{fmt(x['psnr_upscaled'])} dB</figcaption></figure>")
            parts.append(f'<div class="sr">{"".join(figs)}</div>')
        parts.append("<h3>Thumbnails</h3>")
    if ex["mode"] in ("grid", "sr"):
        parts.append(f"<p>{fmt(ex['per_class'])} seeded images per class; each links to its original.</p>")
    elif ex["mode"] == "pixels":
        parts.append(f"<p>{fmt(ex['per_class'])} seeded rows per class, the batch pixels themselves, "
                     "nearest-upscaled; the caption names the batch file and row.</p>")
    for g in ex.get("groups", []):
        caption = (lambda it: f"{e(it['id'])}<br>{e(it['caption'])}") if ex["mode"] == "ultramnist" else \
            (lambda it: f"{e(it['id'])} · {fmt(it.get('width'))}×{fmt(it.get('height'))}")
        cls = "grid pixels" if ex["mode"] == "pixels" else "grid"
        parts.append(f'<div class="cls">{e(g["class"])}</div><div class="{cls}">'
                     + "".join(_thumb(it, caption(it)) for it in g["items"]) + "</div>")
    return "".join(parts)


def _geometry(d: dict) -> str:
    g = d["geometry"]
    parts = []
    if g.get("figure"):
        parts.append(image(g["figure"], g["figure_alt"], cls="plot"))
    if g.get("sampled"):
        parts.append('<p class="note">Datasets over 100,000 images are drawn from a seeded sample of 100,000 '
                     "(the table uses every image).</p>")
    head = ["dataset", "images", "MP min", "MP median", "MP mean", "MP max", "aspect min", "aspect median",
            "aspect max", "portrait", "≥ 500×500", "> 12 MP"]
    rows = [[e(r["dataset"]), fmt(r["images"]), fmt(r["mp_min"], ".3g"), fmt(r["mp_median"], ".3g"),
             fmt(r["mp_mean"], ".3g"), fmt(r["mp_max"], ".3g"), fmt(r["ar_min"], ".3f"), fmt(r["ar_median"], ".3f"),
             fmt(r["ar_max"], ".3f"), pct(r["portrait_share"]), pct(r["share_ge_500x500"]), pct(r["share_gt_12mp"])]
            for r in g["summary"]]
    parts.append(table(head, rows, caption="product size (megapixels) and aspect ratio (width / height)"))
    if g.get("distinct_sizes") == 1:
        parts.append("<p>Every image has the same size: no extremes to show.</p>")
    elif g.get("extremes"):
        parts.append("<h3>Extremes</h3>")
        figs = []
        for x in g["extremes"]:
            cap = f"{e(x['what'])}: {e(x['id'])}<br>{fmt(x['width'])}×{fmt(x['height'])} ({x['megapixels']} MP, " \
                  f"aspect {x['aspect']})"
            figs.append(_thumb(x, cap) if x.get("thumb") else f"<figure>{cap}</figure>")
        parts.append(f'<div class="grid">{"".join(figs)}</div>')
    return "".join(parts)


def _bucketing(d: dict) -> str:
    b = d["bucketing"]
    if b.get("note"):
        return f"<p>{e(b['note'])}</p>"
    st = b["settings"]
    p = b["padding"]
    parts = [f"<p>{e(b['source'])}: K = {st['superbuckets']} super-buckets by pixel count × M = {st['buckets']} "
             f"buckets by aspect ratio (B2B); batch sizes for {e(st.get('model'))} {e(st.get('dtype'))} "
             f"{'training' if st.get('train') else 'inference'} within {e(st.get('memory_budget'))}.</p>",
             table(["plan", "padding (% of padded pixels)"],
                   [["B2B", fmt(p.get("b2b"), ".1f")], ["equal-count boundaries", fmt(p.get("equal_count"), ".1f")],
                    ["one bucket", fmt(p.get("one_bucket"), ".1f")]]),
             image(b["chart"], b["chart_alt"], cls="plot")]
    if st.get("plan_images") is not None and st["plan_images"] != d["header"]["total"]:
        parts.insert(1, f'<p class="bad">The plan holds {fmt(st["plan_images"])} images; this dataset '
                        f'{fmt(d["header"]["total"])}: it was made for other data.</p>')
    c = b["curve"]
    parts.append(table(["M", "buckets made", "B2B padding %", "equal-count padding %"],
                       [[fmt(m), fmt(n), fmt(x, ".1f"), fmt(y, ".1f")]
                        for m, n, x, y in zip(c["m"], c["made"], c["b2b"], c["equal"])],
                       caption=f"padding against buckets per super-bucket (K = {c['superbuckets']}; one bucket: "
                               f"{c['one_bucket']:.1f}%)"))
    parts.append(table(["bucket", "super", "images", "MP range", "aspect range", "padded W×H", "padding %", "batch",
                        "memory/batch"],
                       [[fmt(r["bucket"]), fmt(r["super_bucket"]), fmt(r["images"]),
                         f"{fmt(r['mp_min'], '.2f')}–{fmt(r['mp_max'], '.2f')}",
                         f"{fmt(r['aspect_min'], '.2f')}–{fmt(r['aspect_max'], '.2f')}", e(r["padded"]),
                         fmt(r["padding_percent"], ".1f"), fmt(r["batch_size"]), e(r["memory_per_batch"])]
                        for r in b["buckets"]], caption="bucket table"))
    return "".join(parts)


def _provenance(d: dict) -> str:
    pv = d["provenance"]
    parts = ["<h3>Crawl outcomes</h3>"]
    cr = pv.get("crawl")
    if cr:
        parts.append(f"<p>From the crawl state <code>{e(cr['folder'])}/crawl.sqlite</code>: {fmt(cr['objects'])} "
                     f"objects, {fmt(cr['retries'])} failed attempts retried"
                     + (f"; API {e(cr['api_url'])}" if cr.get("api_url") else "")
                     + ". The whole state: every build that shared this crawl folder counts here.</p>")
        parts.append(table(["reason", "objects"], [[e(r["reason"]), fmt(r["objects"])] for r in cr["reasons"]]))
        if cr["errors"]:
            parts.append(table(["last error", "objects"], [[e(r["error"]), fmt(r["objects"])] for r in cr["errors"]]))
    else:
        parts.append('<p class="note">No crawl state reachable for this dataset (give --crawl DIR).</p>')
    dup = pv["duplicates"]
    parts.append("<h3>Duplicates (identical content)</h3>")
    if not dup["by"]:
        parts.append('<p class="note">No sha256 in the manifest and too many files to hash here: not checked.</p>')
    elif not dup["groups_total"]:
        parts.append(f'<p><span class="ok">none</span> (by {e(dup["by"])}).</p>')
    else:
        parts.append(f"<p>{fmt(dup['groups_total'])} group(s), {fmt(dup['images_in_groups'])} images (by "
                     f"{e(dup['by'])}).</p>")
        parts.append(table(["sha256", "images", "IDs"], [[f"<code>{e(g['sha256'][:16])}…</code>", fmt(g["images"]),
                                                          e(", ".join(g["ids"]))] for g in dup["groups"]]))
    parts.append("<h3>Overlaps with other datasets</h3>")
    if pv["overlaps"]:
        parts.append(table(["other dataset", "images here", "images there", "same ID", "same sha256",
                            "% of these in it", "% of it in these"],
                           [[e(o["other"]), fmt(o["images"]), fmt(o["other_images"]), fmt(o["by_id"]),
                             fmt(o["by_sha256"]), fmt(o["percent_in_other"]), fmt(o["percent_of_other"])]
                            for o in pv["overlaps"]]))
    else:
        parts.append('<p class="note">No --against dataset given.</p>')
    parts.append("<h3>Problems</h3>")
    if pv["problems"]:
        more = f" (first {len(pv['problems'])} shown)" if pv["problems_total"] > len(pv["problems"]) else ""
        parts.append(f"<p>{fmt(pv['problems_total'])} problem(s){more}.</p>")
        parts.append(table(["file", "problem"], [[e(p["path"]), e(p["problem"])] for p in pv["problems"]], left=2))
    else:
        parts.append('<p><span class="ok">none</span>: every file the manifest names is present and every row '
                     "has a size.</p>")
    return "".join(parts)


def _reproduce(d: dict) -> str:
    r = d["reproduce"]
    return (f"<p>Manifest <code>{e(r['manifest'])}</code>, sha256 <code>{e(r['sha256'])}</code>.</p>"
            f"<pre>{e(chr(10).join(r['commands']))}</pre>")


RENDER = {"header": _header, "labels": _labels, "examples": _examples, "geometry": _geometry,
          "bucketing": _bucketing, "provenance": _provenance, "reproduce": _reproduce}


def render(d: dict) -> str:
    """The whole page for the data dict ``d``."""
    toc = "".join(f'<a href="#{e(s["id"])}">{e(s["title"])}</a>' for s in d["sections"])
    body = "\n".join(f'<section id="{e(s["id"])}"><h2>{e(s["title"])}</h2>{RENDER[s["id"]](d)}</section>'
                     for s in d["sections"])
    total = d["header"]["total"]
    return PAGE.substitute(title=e(d["title"]), subtitle=e(f"{d['task']} · {total:,} images · methbuild report"),
                           toc=toc, sections=body, version=e(d["generated"]["methbuild"]),
                           date=e(d["generated"]["date"]), seconds=e(d["generated"]["seconds"]))
